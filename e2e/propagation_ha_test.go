package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/mesosclient"
)

// Propagation on the classic 3-node layout (BENCH.md, "Propagation"): how
// long a task's status change at the leading master takes to show on every
// node's gateway, in its DNS answers and in its proxy's routing.
//
// The clock starts when the change reaches this test on the leader's
// operator SUBSCRIBE stream (TASK_UPDATED): the stream the gateways'
// discovery follows, sent to every subscriber at once, so the figure is
// the gateways' share (discovery, snapshot, zone and route table builds,
// pointer swaps), to within one probe interval. The Marathon API call
// that caused the change is logged apart: it adds scheduling, the launch
// and the health check, which say nothing about propagation.

const (
	propApp   = "/prop"
	propVHost = "prop.example.com"
	propSRV   = "_prop._tcp.marathon.mesos."
	// propPoll is how often a probe starts, to each gateway's DNS and to its
	// proxy, while a change is pending.
	propPoll = time.Millisecond
	// propRun is how many proxy answers in a row must avoid a removed task
	// before the proxy counts as changed: the backend is drained, not gone
	// (the agent's --task_killing_drain keeps it serving for 1 s after
	// TASK_KILLING), so one answer from the other backend may be just its
	// round-robin turn; several in a row from a route of two backends are
	// not. checkRoutes confirms it on the route table.
	propRun = 3
	// propVisibleTimeout bounds how long one change may take to show.
	propVisibleTimeout = 10 * time.Second
)

// propCmd serves "hello from <task ID>" with keep-alive, TCP_NODELAY and
// no access log: python's default server closes every connection and logs
// every request, and here some of its answers then took hundreds of
// milliseconds.
const propCmd = `echo "hello from $MESOS_TASK_ID" > index.html && exec python3 -c '
import http.server as s, os
h = s.SimpleHTTPRequestHandler
h.protocol_version = "HTTP/1.1"
h.disable_nagle_algorithm = True
h.log_message = lambda *args: None
s.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT0"])), h).serve_forever()'`

// BenchmarkHAPropagation starts the 3-node layout, deploys /prop (one
// health-checked python HTTP server behind the vhost prop.example.com),
// and per iteration makes two changes, each measured on all three
// gateways, whose DNS and proxy are probed every millisecond (see poll):
//
//   - up: scale to 2; from the new task's healthy TASK_RUNNING until its
//     port is in the SRV answer of _prop._tcp.marathon.mesos and it answers
//     through the vhost;
//   - down: kill that task with scale=true; from its TASK_KILLING until its
//     port has left the SRV answer and the vhost no longer routes to it.
//
// A gateway's figure is the later of its DNS and proxy; reported: p50, p99
// and max per direction, pooled over the gateways. The proxy's up figure
// may carry one probe interval more than the change took: round robin can
// send the first request after the swap to the old backend. Per-gateway figures,
// DNS and proxy apart, and the time from each Marathon API call to its
// status change are logged. ns/op is suppressed: an iteration mostly
// waits for a launch and a health check.
//
//	go test -run xxx -bench HAPropagation -benchtime 20x ./e2e
func BenchmarkHAPropagation(b *testing.B) {
	leakcheck.Check(b)
	p := startHAPropagation(b)
	for b.Loop() {
		p.round(b)
	}
	b.ReportMetric(0, "ns/op")
	for _, up := range []bool{true, false} {
		p50, p99, worst := quantiles(p.pooled(up, "both"))
		b.ReportMetric(ms(p50), direction(up)+"-p50-ms")
		b.ReportMetric(ms(p99), direction(up)+"-p99-ms")
		b.ReportMetric(ms(worst), direction(up)+"-max-ms")
	}
	p.log(b)
}

// TestHAPropagation runs the benchmark's path for a few changes so it
// cannot rot: every change must show on all three gateways, in DNS and in
// the proxy, the proxies' route tables must agree, and no goroutine may
// outlive the test (no timing is asserted).
func TestHAPropagation(t *testing.T) {
	const changes = 3
	leakcheck.Check(t)
	p := startHAPropagation(t)
	for i := 0; i < changes; i++ {
		p.round(t)
	}
	for _, up := range []bool{true, false} {
		if n := len(p.pooled(up, "both")); n != changes*len(p.c.nodes) {
			t.Fatalf("%s: measured %d gateway changes, want %d", direction(up), n, changes*len(p.c.nodes))
		}
	}
	p.log(t)
}

// stamped is one operator event with the moment it arrived here.
type stamped struct {
	at time.Time
	ev mesos.OperatorEvent
}

// propSample is how long one change took to show on one gateway.
type propSample struct {
	up        bool
	gateway   string
	dns, http time.Duration
}

// haPropagation is a running 3-node cluster with /prop deployed and the
// leader's operator stream followed.
type haPropagation struct {
	c    *haCluster
	lead *haNode
	// events come from the operator stream, read by one goroutine; exited
	// is closed when it ends, after streamErr is set.
	events    chan stamped
	exited    chan struct{}
	streamErr error
	// ports and apps are what TASK_ADDED (and SUBSCRIBED) said of each
	// task: its host port and Marathon app.
	ports map[string]uint32
	apps  map[string]string
	base  string // the task that stays
	web   []*http.Client
	// samples and apiToEvent accumulate over the rounds.
	samples    []propSample
	apiToEvent map[bool][]time.Duration
}

// startHAPropagation starts the cluster, follows the leader's operator
// stream and deploys /prop with one task, resolved and routed by every
// gateway.
func startHAPropagation(tb testing.TB) *haPropagation {
	tb.Helper()
	c := startHA(tb)
	p := &haPropagation{c: c, events: make(chan stamped, 4096), exited: make(chan struct{}),
		ports: map[string]uint32{}, apps: map[string]string{}, apiToEvent: map[bool][]time.Duration{}}
	waitUntil(tb, "a leader is elected", 30*time.Second, func() (err error) {
		p.lead, err = c.leader()
		return err
	})
	waitUntil(tb, "the leader's Marathon API answers", 30*time.Second, func() error {
		_, err := c.marathon(p.lead, "GET", "/v2/apps", nil, http.StatusOK)
		return err
	})
	for range c.nodes {
		tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
		p.web = append(p.web, &http.Client{Timeout: 2 * time.Second, Transport: tr})
		tb.Cleanup(tr.CloseIdleConnections)
	}

	ctx, cancel := context.WithCancel(context.Background())
	op := mesosclient.NewOperator("http://" + net.JoinHostPort(p.lead.ip, strconv.Itoa(haMasterPort)))
	go func() {
		defer close(p.exited)
		p.streamErr = op.Subscribe(ctx, time.Minute, func(ev mesos.OperatorEvent) {
			select {
			case p.events <- stamped{at: time.Now(), ev: ev}:
			case <-ctx.Done():
			}
		})
	}()
	tb.Cleanup(func() {
		cancel()
		<-p.exited
	})
	p.waitEvent(tb, "the operator stream is subscribed", 30*time.Second, func(e stamped) bool {
		return e.ev.Type == mesos.OpEventSubscribed
	})

	app := map[string]any{"id": propApp, "instances": 1, "cpus": 0.1, "mem": 32,
		"cmd":             propCmd,
		"portDefinitions": []map[string]any{{"port": 0}},
		"healthChecks":    []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 10}},
		// propRun's reading of "no longer routed" relies on round robin.
		"labels": map[string]string{"HAPROXY_0_VHOST": propVHost, "HAPROXY_0_BALANCE": "roundrobin"}}
	if _, err := c.marathon(p.lead, "POST", "/v2/apps", app, http.StatusCreated); err != nil {
		tb.Fatal(err)
	}
	ev := p.waitEvent(tb, propApp+"'s first task is healthy", 90*time.Second, func(e stamped) bool {
		return p.becameHealthy(e) != ""
	})
	p.base = p.becameHealthy(ev)
	waitUntil(tb, propApp+" is resolved and routed by every gateway", 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for i, n := range c.nodes {
			body, err := p.get(ctx, i)
			if err != nil || !strings.Contains(body, "hello from "+p.base) {
				return fmt.Errorf("%s proxy: %v %q", n.name, err, body)
			}
			ports, err := srvPorts(ctx, net.JoinHostPort(n.ip, strconv.Itoa(haDNSPort)))
			if err != nil || !ports[p.ports[p.base]] {
				return fmt.Errorf("%s DNS: %v %v", n.name, err, ports)
			}
		}
		return nil
	})
	return p
}

// round scales /prop up by one task and back down by killing that task,
// measuring both changes on every gateway.
func (p *haPropagation) round(tb testing.TB) {
	tb.Helper()
	p.waitSettled(tb, 1)
	if _, err := p.c.marathon(p.lead, "PUT", "/v2/apps"+propApp, map[string]any{"instances": 2}, http.StatusOK); err != nil {
		tb.Fatal(err)
	}
	called := time.Now()
	ev := p.waitEvent(tb, "a second task is healthy", 60*time.Second, func(e stamped) bool {
		id := p.becameHealthy(e)
		return id != "" && id != p.base
	})
	task := p.becameHealthy(ev)
	port := p.ports[task]
	p.apiToEvent[true] = append(p.apiToEvent[true], ev.at.Sub(called))
	p.measure(tb, true, task, port, ev.at)
	p.checkRoutes(tb, task, true)

	p.waitSettled(tb, 2)
	if _, err := p.c.marathon(p.lead, "DELETE", "/v2/apps"+propApp+"/tasks/"+task+"?scale=true", nil, http.StatusOK); err != nil {
		tb.Fatal(err)
	}
	called = time.Now()
	ev = p.waitEvent(tb, task+" leaves TASK_RUNNING", 30*time.Second, func(e stamped) bool {
		u := e.ev.TaskUpdated
		return e.ev.Type == mesos.OpEventTaskUpdated && u != nil && u.Status.TaskID.Value == task && u.State != mesos.TaskRunning
	})
	p.apiToEvent[false] = append(p.apiToEvent[false], ev.at.Sub(called))
	p.measure(tb, false, task, port, ev.at)
	p.checkRoutes(tb, task, false)
}

// becameHealthy returns the task of /prop that e reports healthy and
// running, or "".
func (p *haPropagation) becameHealthy(e stamped) string {
	u := e.ev.TaskUpdated
	if e.ev.Type != mesos.OpEventTaskUpdated || u == nil || u.State != mesos.TaskRunning || u.Status.Healthy == nil || !*u.Status.Healthy {
		return ""
	}
	if id := u.Status.TaskID.Value; p.apps[id] == propApp {
		return id
	}
	return ""
}

// waitEvent reads the operator stream until match, noting every task's
// port and app on the way.
func (p *haPropagation) waitEvent(tb testing.TB, what string, timeout time.Duration, match func(stamped) bool) stamped {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case e := <-p.events:
			var tasks []mesos.Task
			switch {
			case e.ev.Type == mesos.OpEventSubscribed && e.ev.Subscribed != nil:
				tasks = e.ev.Subscribed.GetState.GetTasks.Tasks
			case e.ev.Type == mesos.OpEventTaskAdded && e.ev.TaskAdded != nil:
				tasks = []mesos.Task{e.ev.TaskAdded.Task}
			}
			for _, t := range tasks {
				p.ports[t.TaskID.Value] = hostPort(t)
				p.apps[t.TaskID.Value], _ = t.Labels.Get(mesos.LabelAppID)
			}
			if match(e) {
				return e
			}
		case <-p.exited:
			tb.Fatalf("%s: the operator stream of %s ended: %v", what, p.lead.name, p.streamErr)
		case <-deadline.C:
			tb.Fatalf("%s: not seen on the operator stream within %v", what, timeout)
		}
	}
}

// hostPort is the first host port of a task, as the gateways read it.
func hostPort(t mesos.Task) uint32 {
	if d := t.Discovery; d != nil && d.Ports != nil && len(d.Ports.Ports) > 0 {
		return d.Ports.Ports[0].Number
	}
	if r := t.Resources.Ranges("ports"); len(r) > 0 {
		return uint32(r[0].Begin)
	}
	return 0
}

// waitSettled waits until /prop has no deployment and runs instances
// tasks, so that one change is measured at a time.
func (p *haPropagation) waitSettled(tb testing.TB, instances int) {
	tb.Helper()
	waitUntil(tb, fmt.Sprintf("%s settles at %d tasks", propApp, instances), 60*time.Second, func() error {
		out, err := p.c.marathon(p.lead, "GET", "/v2/deployments", nil, http.StatusOK)
		if err != nil {
			return err
		}
		var deps []json.RawMessage
		if err := json.Unmarshal(out, &deps); err != nil {
			return err
		}
		if len(deps) > 0 {
			return fmt.Errorf("%d deployments in progress", len(deps))
		}
		tasks, err := p.c.runningTasks(p.lead, propApp)
		if err == nil && len(tasks) != instances {
			err = fmt.Errorf("running %v", tasks)
		}
		return err
	})
}

// measure probes every gateway's DNS and proxy until the change shows on
// all of them and records how long after from each took.
func (p *haPropagation) measure(tb testing.TB, up bool, task string, port uint32, from time.Time) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), propVisibleTimeout)
	defer cancel()
	basePort := p.ports[p.base]
	want := "hello from " + task
	if !up {
		want = "hello from " + p.base
	}
	run := 1
	if !up {
		run = propRun
	}
	type result struct {
		at  time.Time
		err error
	}
	dns := make([]result, len(p.c.nodes))
	web := make([]result, len(p.c.nodes))
	var wg sync.WaitGroup
	for i, n := range p.c.nodes {
		dnsAddr := net.JoinHostPort(n.ip, strconv.Itoa(haDNSPort))
		wg.Add(2)
		go func() {
			defer wg.Done()
			dns[i].at, dns[i].err = poll(ctx, 1, func(ctx context.Context) error {
				ports, err := srvPorts(ctx, dnsAddr)
				if err == nil && (ports[port] != up || !ports[basePort]) {
					err = fmt.Errorf("SRV ports %v", ports)
				}
				return err
			})
		}()
		go func() {
			defer wg.Done()
			web[i].at, web[i].err = poll(ctx, run, func(ctx context.Context) error {
				body, err := p.get(ctx, i)
				if err == nil && !strings.Contains(body, want) {
					err = fmt.Errorf("answered %q", strings.TrimSpace(body))
				}
				return err
			})
		}()
	}
	wg.Wait()
	for i, n := range p.c.nodes {
		if dns[i].err != nil || web[i].err != nil {
			tb.Fatalf("%s of %s (port %d) not visible on %s within %v: DNS: %v; proxy: %v",
				direction(up), task, port, n.name, propVisibleTimeout, dns[i].err, web[i].err)
		}
		p.samples = append(p.samples, propSample{up: up, gateway: n.name, dns: dns[i].at.Sub(from), http: web[i].at.Sub(from)})
	}
}

// poll starts probe every propPoll without waiting for earlier probes to
// answer (so a slow answer, such as python's on this shared machine, does
// not blur the figure) until run probes in a row, in the order they were
// started, see the change (return nil). It returns when the first of
// those started: the gateway answered from the new state a request it
// received after that moment.
func poll(ctx context.Context, run int, probe func(context.Context) error) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	type result struct {
		started time.Time
		err     error
		done    bool
	}
	var (
		mu      sync.Mutex
		results []result
		judged  int // results before this index are judged, in order
		inARow  int
		last    error
	)
	found := make(chan time.Time, 1)
	slots := make(chan struct{}, 64) // probes in flight
	tick := time.NewTicker(propPoll)
	defer tick.Stop()
	for {
		select {
		case slots <- struct{}{}:
			mu.Lock()
			i := len(results)
			results = append(results, result{})
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				mu.Lock()
				results[i].started = time.Now()
				mu.Unlock()
				err := probe(ctx)
				mu.Lock()
				defer mu.Unlock()
				results[i].err, results[i].done = err, true
				for ; judged < len(results) && results[judged].done && inARow < run; judged++ {
					if r := results[judged]; r.err != nil {
						inARow, last = 0, r.err
					} else if inARow++; inARow == run {
						found <- results[judged-run+1].started
					}
				}
			}()
		default: // as many probes in flight as allowed: skip this tick
		}
		select {
		case at := <-found:
			return at, nil
		case <-ctx.Done():
			mu.Lock()
			err := fmt.Errorf("%w (last answer: %v)", ctx.Err(), last)
			mu.Unlock()
			return time.Time{}, err
		case <-tick.C:
		}
	}
}

// checkRoutes asserts that every gateway's route table lists task as a
// backend of /prop (want) or does not.
func (p *haPropagation) checkRoutes(tb testing.TB, task string, want bool) {
	tb.Helper()
	for _, n := range p.c.nodes {
		out, err := httpBody("http://" + net.JoinHostPort(n.ip, strconv.Itoa(haAdminPort)) + "/v1/routes")
		if err != nil {
			tb.Fatalf("%s /v1/routes: %v", n.name, err)
		}
		var table struct {
			Routes []struct {
				App      string `json:"app"`
				Backends []struct {
					TaskID string `json:"task_id"`
				} `json:"backends"`
			} `json:"routes"`
		}
		if err := json.Unmarshal(out, &table); err != nil {
			tb.Fatalf("%s /v1/routes: %v: %s", n.name, err, out)
		}
		found := false
		for _, r := range table.Routes {
			for _, be := range r.Backends {
				found = found || (r.App == propApp && be.TaskID == task)
			}
		}
		if found != want {
			tb.Fatalf("%s: the proxy answered as if %s were routed=%v, but its route table says %v: %s", n.name, task, want, found, out)
		}
	}
}

// get asks gateway i's proxy for the vhost.
func (p *haPropagation) get(ctx context.Context, i int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(p.c.nodes[i].ip, strconv.Itoa(haHTTPPort))+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = propVHost
	resp, err := p.web[i].Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return string(b), err
}

// srvPorts returns the ports of the SRV answer for propSRV from the DNS
// server at addr.
func srvPorts(ctx context.Context, addr string) (map[uint32]bool, error) {
	q := new(mdns.Msg)
	q.SetQuestion(propSRV, mdns.TypeSRV)
	r, _, err := (&mdns.Client{Timeout: time.Second}).ExchangeContext(ctx, q, addr)
	if err != nil {
		return nil, err
	}
	if r.Rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", mdns.RcodeToString[r.Rcode])
	}
	ports := map[uint32]bool{}
	for _, rr := range r.Answer {
		if srv, ok := rr.(*mdns.SRV); ok {
			ports[uint32(srv.Port)] = true
		}
	}
	return ports, nil
}

// httpBody GETs url and returns the body of a 200.
func httpBody(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return b, err
}

// pooled returns the delays of one direction over every gateway: of the
// DNS ("dns"), the proxy ("http"), or the later of the two ("both"); of
// one gateway only when gateway is set.
func (p *haPropagation) pooled(up bool, kind string, gateway ...string) []time.Duration {
	var out []time.Duration
	for _, s := range p.samples {
		if s.up != up || (len(gateway) > 0 && s.gateway != gateway[0]) {
			continue
		}
		switch kind {
		case "dns":
			out = append(out, s.dns)
		case "http":
			out = append(out, s.http)
		default:
			out = append(out, max(s.dns, s.http))
		}
	}
	return out
}

// log prints what was measured: per direction, per gateway and pooled,
// DNS, proxy and both; and the Marathon API call to status change times.
func (p *haPropagation) log(tb testing.TB) {
	tb.Helper()
	// Nine lines at most: a benchmark's log is cut at the tenth.
	tb.Logf("ms p50/p99/max from the TASK_UPDATED on %s's operator stream (up: healthy TASK_RUNNING, down: TASK_KILLING) "+
		"to the first probe that saw the change (DNS: SRV %s; proxy: GET / Host %s; one probe every %v to each); "+
		"Marathon API call -> TASK_UPDATED (not propagation): up %s, down %s",
		p.lead.name, propSRV, propVHost, propPoll, fmtQ(p.apiToEvent[true]), fmtQ(p.apiToEvent[false]))
	for _, up := range []bool{true, false} {
		gws := make([]string, 0, len(p.c.nodes)+1)
		for _, n := range p.c.nodes {
			gws = append(gws, n.name)
		}
		for _, gw := range append(gws, "all") {
			var only []string
			if gw != "all" {
				only = []string{gw}
			}
			tb.Logf("%-4s %-5s dns %s  proxy %s  both %s (%d changes)", direction(up), gw,
				fmtQ(p.pooled(up, "dns", only...)), fmtQ(p.pooled(up, "http", only...)), fmtQ(p.pooled(up, "both", only...)),
				len(p.pooled(up, "both", only...)))
		}
	}
}

func direction(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// quantiles returns the p50, p99 and max of ds (zero when empty).
func quantiles(ds []time.Duration) (p50, p99, worst time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
	return q(0.5), q(0.99), s[len(s)-1]
}

func fmtQ(ds []time.Duration) string {
	p50, p99, worst := quantiles(ds)
	return fmt.Sprintf("%.2f/%.2f/%.2f", ms(p50), ms(p99), ms(worst))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitUntil polls fn until it returns nil, failing tb after timeout.
func waitUntil(tb testing.TB, what string, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
