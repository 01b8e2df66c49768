package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/discovery"
	"github.com/keelhq/keel/dns"
	"github.com/keelhq/keel/master"
	"github.com/keelhq/keel/mesosclient"
	"github.com/keelhq/keel/proxy"
)

// BenchmarkPropagation measures, for one task at a time, how long a
// status change at the master takes to show in the gateway: from the
// agent's TASK_RUNNING update until the task's name resolves and its vhost
// routes, and from TASK_KILLING until the name is NXDOMAIN and the vhost
// answers 503. Master, discovery, DNS and proxy run in-process on real
// loopback sockets; the benchmark itself plays the agent over the agent
// protocol. Reported: p50, p99 and max per direction.
//
//	go test -run xxx -bench Propagation -benchtime 1000x ./bench
func BenchmarkPropagation(b *testing.B) {
	up, down := propagation(b, b.N, b.ResetTimer, b.StartTimer, b.StopTimer)
	report(b, "running", up)
	report(b, "killing", down)
}

// TestPropagation runs the benchmark's path a few times so it cannot rot:
// every change must become visible (no timing is asserted).
func TestPropagation(t *testing.T) {
	nop := func() {}
	up, down := propagation(t, 5, nop, nop, nop)
	if len(up) != 5 || len(down) != 5 {
		t.Fatalf("measured %d/%d changes", len(up), len(down))
	}
}

// propagation runs n RUNNING/KILLING round trips and returns how long each
// took to show; the timer hooks let a benchmark leave set-up out.
func propagation(b testing.TB, n int, resetTimer, startTimer, stopTimer func()) (up, down []time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := coord.OpenBolt(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	addrc := make(chan net.Addr, 1)
	go master.Run(ctx, master.Config{Listen: "127.0.0.1:0", Store: store, AllocationInterval: 10 * time.Millisecond,
		OnListen: func(a net.Addr) { addrc <- a }, Logger: quiet()})
	url := "http://" + (<-addrc).String()

	backend := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	bl, _ := net.Listen("tcp", "127.0.0.1:0")
	go backend.Serve(bl)
	defer backend.Close()
	backendPort := uint32(bl.Addr().(*net.TCPAddr).Port)

	disc := discovery.New(discovery.Config{Master: url, Logger: quiet()})
	d, _ := dns.New(dns.Config{Addr: "127.0.0.1:0", Logger: quiet()})
	httpPort := freePort(b)
	p, _ := proxy.New(proxy.Config{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", httpPort), ServiceBind: "127.0.0.1", Logger: quiet()})
	disc.OnUpdate(d.Update)
	disc.OnUpdate(p.Update)
	go disc.Run(ctx)
	go d.Run(ctx)
	go p.Run(ctx)
	<-d.Ready()

	ag := newAgent(b, ctx, url)
	sched := mesosclient.NewScheduler(url)
	offers := make(chan mesos.Offer, 16)
	go sched.Subscribe(ctx, mesos.FrameworkInfo{User: "bench", Name: "marathon"}, func(ev mesos.Event) {
		if ev.Type == mesos.EventOffers {
			for _, o := range ev.Offers.Offers {
				offers <- o
			}
		}
	})

	dnsc := &mdns.Client{Timeout: time.Second}
	hc := &http.Client{Timeout: time.Second}
	resetTimer()
	for i := 0; i < n; i++ {
		stopTimer()
		name := fmt.Sprintf("t%d", i)
		// Launch the task (the agent side stays silent until we say RUNNING).
		o := <-offers
		ti := mesos.TaskInfo{Name: name, TaskID: mesos.ID{Value: name}, AgentID: o.AgentID,
			Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.001)}, Command: &mesos.CommandInfo{Value: "true"},
			Labels:    &mesos.Labels{Labels: []mesos.Label{{Key: "HAPROXY_0_VHOST", Value: name + ".example.com"}}},
			Discovery: &mesos.DiscoveryInfo{Visibility: "FRAMEWORK", Name: name, Ports: &mesos.Ports{Ports: []mesos.Port{{Number: backendPort, Protocol: "tcp"}}}}}
		zero := 0.0
		if err := sched.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o.ID},
			Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{ti}}}},
			Filters:    &mesos.Filters{RefuseSeconds: &zero}}}); err != nil {
			b.Fatal(err)
		}
		ag.waitLaunch(b, name)
		fqdn := name + ".marathon.mesos."
		startTimer()

		start := time.Now()
		ag.update(b, name, mesos.TaskRunning)
		waitFor(b, func() bool { return resolves(dnsc, d.Addr(), fqdn) && routes(hc, httpPort, name) == 200 })
		up = append(up, time.Since(start))

		start = time.Now()
		ag.update(b, name, mesos.TaskKilling)
		waitFor(b, func() bool { return !resolves(dnsc, d.Addr(), fqdn) && routes(hc, httpPort, name) == 503 })
		down = append(down, time.Since(start))

		stopTimer()
		ag.update(b, name, mesos.TaskKilled)
		startTimer()
	}
	stopTimer()
	return up, down
}

func report(b *testing.B, what string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(f float64) float64 { return float64(ds[int(f*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), what+"_p50_ms")
	b.ReportMetric(q(0.99), what+"_p99_ms")
	b.ReportMetric(q(1), what+"_max_ms")
}

func waitFor(b testing.TB, ok func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatal("change not visible within 10s")
		}
	}
}

func resolves(c *mdns.Client, addr, name string) bool {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	r, _, err := c.Exchange(m, addr)
	return err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) > 0
}

func routes(c *http.Client, port int, name string) int {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
	req.Host = name + ".example.com"
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func freePort(b testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// launched is one LAUNCH an agent received.
type launched struct{ task, framework string }

// benchAgent plays an agent over the agent protocol.
type benchAgent struct {
	url, id, stream string
	launches        chan launched
	pings           chan struct{}
	fid             string
}

func newAgent(b testing.TB, ctx context.Context, url string) *benchAgent {
	a := &benchAgent{url: url, launches: make(chan launched, 16), pings: make(chan struct{}, 1)}
	res, _ := mesos.ParseResources("cpus:1000;mem:1000;ports:[1-65535]")
	body, _ := json.Marshal(agent.Call{Type: agent.CallSubscribe, Subscribe: &agent.Subscribe{
		AgentInfo: mesos.AgentInfo{Hostname: "bench", Resources: res}, IP: "127.0.0.1"}})
	req, _ := http.NewRequestWithContext(ctx, "POST", url+agent.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	a.stream = resp.Header.Get(agent.StreamIDHeader)
	ready := make(chan struct{})
	go mesosclient.Stream(ctx, resp.Body, time.Minute, func(ev agent.Event) {
		switch ev.Type {
		case agent.EventSubscribed:
			a.id = ev.Subscribed.AgentID.Value
			close(ready)
		case agent.EventLaunch:
			a.launches <- launched{task: ev.Launch.Task.TaskID.Value, framework: ev.Launch.FrameworkID.Value}
		case agent.EventPing:
			select {
			case a.pings <- struct{}{}:
			default:
			}
		}
	})
	<-ready
	return a
}

func (a *benchAgent) waitLaunch(b testing.TB, id string) {
	select {
	case got := <-a.launches:
		if got.task != id {
			b.Fatalf("launched %s, want %s", got.task, id)
		}
		a.fid = got.framework
	case <-time.After(10 * time.Second):
		b.Fatal("no launch")
	}
}

func (a *benchAgent) update(b testing.TB, id string, state mesos.TaskState) {
	body, _ := json.Marshal(agent.Call{Type: agent.CallUpdate, AgentID: mesos.NewID(a.id), Update: &agent.Update{
		FrameworkID: mesos.ID{Value: a.fid}, Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id}, State: state, Source: mesos.SourceExecutor}}})
	req, _ := http.NewRequest("POST", a.url+agent.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agent.StreamIDHeader, a.stream)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		b.Fatalf("update: %v %v", err, resp)
	}
	resp.Body.Close()
}
