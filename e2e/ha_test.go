package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/internal/zktest"
)

// haCluster is the classic layout on one machine: a 3-server ZooKeeper
// ensemble and three nodes on their own loopback addresses (127.0.0.21-23),
// each running keel master, keel agent and keel gateway as separate
// processes, masters with --zk and --quorum 2.
type haCluster struct {
	t     testing.TB
	zk    *zktest.Cluster
	zkURL string
	nodes []*haNode
}

type haNode struct {
	name, ip          string
	dir               string
	masterArgs        []string
	master, agent     *proc
	gateway           *proc
	agentArgs, gwArgs []string
}

const (
	haMasterPort   = 5050
	haMarathonPort = 8080
	haDNSPort      = 8053
	haHTTPPort     = 8000
	haAdminPort    = 9090
	haSession      = 3 * time.Second
)

func startHA(t testing.TB) *haCluster {
	t.Helper()
	need(t, "python3")
	zk := zktest.StartEnsemble(t, 3)
	c := &haCluster{t: t, zk: zk, zkURL: "zk://" + zk.ConnectString() + "/keel"}
	for i := 1; i <= 3; i++ {
		n := &haNode{name: fmt.Sprintf("node%d", i), ip: fmt.Sprintf("127.0.0.%d", 20+i), dir: t.TempDir()}
		n.masterArgs = []string{"master", "--ip", n.ip, "--port", strconv.Itoa(haMasterPort), "--work_dir", n.dir + "/master",
			"--zk", c.zkURL, "--quorum", "2", "--zk_session_timeout", haSession.String(),
			"--marathon_ip", n.ip, "--marathon_port", strconv.Itoa(haMarathonPort), "--allocation_interval", "100ms",
			"--agent_reregister_timeout", "20s", "--agent_ping_timeout", "1s", "--max_agent_ping_timeouts", "5",
			"--local_port_min", "10000", "--local_port_max", "10099"}
		// Each agent has its own host ports: tasks bind 0.0.0.0.
		base := 31000 + 100*i
		n.agentArgs = []string{"agent", "--master", c.zkURL, "--ip", n.ip, "--hostname", n.name, "--port", "0",
			"--work_dir", n.dir + "/agent", "--resources", fmt.Sprintf("cpus:2;mem:2048;disk:1000;ports:[%d-%d]", base, base+99)}
		n.gwArgs = []string{"gateway", "--master", c.zkURL, "--work_dir", n.dir + "/gateway",
			"--dns_addr", net.JoinHostPort(n.ip, strconv.Itoa(haDNSPort)), "--http_addr", net.JoinHostPort(n.ip, strconv.Itoa(haHTTPPort)),
			"--admin_addr", net.JoinHostPort(n.ip, strconv.Itoa(haAdminPort)), "--service_bind", n.ip, "--resolvers", "127.0.0.1:9"}
		n.gwArgs = append(n.gwArgs, gatewayTestArgs()...)
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		n.master = startKeel(t, n.masterArgs...)
	}
	for _, n := range c.nodes {
		n.agent = startKeel(t, n.agentArgs...)
		n.gateway = startKeel(t, n.gwArgs...)
	}
	return c
}

// gatewayTestArgs are the flags every test gateway gets: no TLS
// listener on the privileged default port.
func gatewayTestArgs() []string { return []string{"--https_addr", ""} }

// noRedirect shows redirects instead of following them.
var noRedirect = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// leader asks every live master's /master/redirect and returns the node
// that leads, if all that answer agree.
func (c *haCluster) leader() (*haNode, error) {
	var found string
	for _, n := range c.nodes {
		if n.master == nil {
			continue
		}
		resp, err := noRedirect.Get("http://" + net.JoinHostPort(n.ip, strconv.Itoa(haMasterPort)) + "/master/redirect")
		if err != nil {
			continue
		}
		resp.Body.Close()
		loc := strings.TrimPrefix(resp.Header.Get("Location"), "//")
		if resp.StatusCode != http.StatusTemporaryRedirect || loc == "" {
			return nil, fmt.Errorf("%s: /master/redirect answered %d %q", n.name, resp.StatusCode, loc)
		}
		if found != "" && found != loc {
			return nil, fmt.Errorf("masters disagree on the leader: %s and %s", found, loc)
		}
		found = loc
	}
	for _, n := range c.nodes {
		if n.master != nil && found == net.JoinHostPort(n.ip, strconv.Itoa(haMasterPort)) {
			// It must really serve as the leader.
			resp, err := noRedirect.Get("http://" + found + "/master/state")
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return nil, fmt.Errorf("%s is named leader but answers /master/state with %d", n.name, resp.StatusCode)
			}
			return n, nil
		}
	}
	return nil, fmt.Errorf("no live master leads (redirects name %q)", found)
}

// marathon calls the Marathon API of node n (a standby proxies to the
// leader).
func (c *haCluster) marathon(n *haNode, method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "http://"+net.JoinHostPort(n.ip, strconv.Itoa(haMarathonPort))+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return out, fmt.Errorf("%s %s on %s: got %d want %d: %s", method, path, n.name, resp.StatusCode, want, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// runningTasks returns the sorted IDs of the app's running tasks as the
// Marathon API of n sees them.
func (c *haCluster) runningTasks(n *haNode, id string) ([]string, error) {
	out, err := c.marathon(n, "GET", "/v2/apps"+id, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var r marathon.AppResponse
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, err
	}
	var ids []string
	for _, tk := range r.App.Tasks {
		if tk.State == "TASK_RUNNING" {
			ids = append(ids, tk.ID)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

func (c *haCluster) eventually(what string, timeout time.Duration, fn func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills p with SIGKILL and waits for it.
func kill9(p *proc) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// load sends HTTP requests through every gateway's vhost and DNS queries
// to every gateway, without pause, counting failures, until stop.
type load struct {
	ok, failed       atomic.Int64
	dnsOK, dnsFailed atomic.Int64
	mu               sync.Mutex
	errs             []string
	stop             chan struct{}
	once             sync.Once
	wg               sync.WaitGroup
}

func (l *load) fail(err string) {
	l.mu.Lock()
	if len(l.errs) < 10 {
		l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err)
	}
	l.mu.Unlock()
}

func startLoad(c *haCluster, vhost, name string) *load {
	l := &load{stop: make(chan struct{})}
	c.t.Cleanup(l.end) // a test that fails before its end() stops it too
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}}
	for _, n := range c.nodes {
		httpAddr := "http://" + net.JoinHostPort(n.ip, strconv.Itoa(haHTTPPort)) + "/"
		dnsAddr := net.JoinHostPort(n.ip, strconv.Itoa(haDNSPort))
		l.wg.Add(2)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", httpAddr, nil)
				req.Host = vhost
				resp, err := hc.Do(req)
				if err != nil {
					l.failed.Add(1)
					l.fail(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), "hello from") {
					l.failed.Add(1)
					l.fail(fmt.Sprintf("%s: %d %q", httpAddr, resp.StatusCode, body))
					continue
				}
				l.ok.Add(1)
			}
		}()
		go func() {
			defer l.wg.Done()
			cl := &mdns.Client{Timeout: 2 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				q := new(mdns.Msg)
				q.SetQuestion(name, mdns.TypeA)
				r, _, err := cl.Exchange(q, dnsAddr)
				if err != nil || r.Rcode != mdns.RcodeSuccess || len(r.Answer) == 0 {
					l.dnsFailed.Add(1)
					if err != nil {
						l.fail(dnsAddr + ": " + err.Error())
					} else {
						l.fail(fmt.Sprintf("%s: rcode %s, %d answers", dnsAddr, mdns.RcodeToString[r.Rcode], len(r.Answer)))
					}
					continue
				}
				l.dnsOK.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	return l
}

// end stops the load and waits for it; it may be called more than once.
func (l *load) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// TestHAFailover is the classic 3-node layout under constant HTTP load
// through every gateway and DNS queries to every gateway: kill -9 the
// leading master (KEEL_FAILOVER_ROUNDS times, default 2): a standby leads
// within the session timeout plus a little, the same tasks keep running
// (none lost, none launched twice), the Marathon API answers from every
// node, and not one request or query fails. The killed master comes back
// as a standby that redirects to the leader.
func TestHAFailover(t *testing.T) {
	c := startHA(t)
	var lead *haNode
	c.eventually("a leader is elected", 30*time.Second, func() (err error) {
		lead, err = c.leader()
		return err
	})
	c.eventually("the Marathon API answers through every node", 30*time.Second, func() error {
		for _, n := range c.nodes {
			if _, err := c.marathon(n, "GET", "/v2/apps", nil, http.StatusOK); err != nil {
				return err
			}
		}
		return nil
	})
	app := map[string]any{"id": "/web", "instances": 3, "cpus": 0.1, "mem": 32,
		"cmd":             `echo "hello from $MESOS_TASK_ID" > index.html && exec python3 -m http.server --bind 0.0.0.0 $PORT0`,
		"portDefinitions": []map[string]any{{"port": 0}}, "constraints": [][]string{{"hostname", "UNIQUE"}},
		"healthChecks": []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 10}},
		"labels":       map[string]string{"HAPROXY_0_VHOST": "web.example.com"}}
	// Deploy through a standby: its front proxies to the leader.
	standby := c.nodes[0]
	if standby == lead {
		standby = c.nodes[1]
	}
	if _, err := c.marathon(standby, "POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	var tasks []string
	c.eventually("3 running tasks", 60*time.Second, func() (err error) {
		tasks, err = c.runningTasks(lead, "/web")
		if err == nil && len(tasks) != 3 {
			err = fmt.Errorf("running: %v", tasks)
		}
		return err
	})
	c.eventually("every gateway routes and resolves the app", 30*time.Second, func() error {
		for _, n := range c.nodes {
			body, err := get("http://"+net.JoinHostPort(n.ip, strconv.Itoa(haHTTPPort))+"/", "web.example.com")
			if err != nil || !strings.Contains(body, "hello from") {
				return fmt.Errorf("%s proxy: %v %q", n.name, err, body)
			}
			q := new(mdns.Msg)
			q.SetQuestion("web.marathon.mesos.", mdns.TypeA)
			r, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(q, net.JoinHostPort(n.ip, strconv.Itoa(haDNSPort)))
			if err != nil || len(r.Answer) != 3 {
				return fmt.Errorf("%s DNS: %v %v", n.name, err, r)
			}
		}
		return nil
	})

	// master.mesos lists every master, as Mesos-DNS does from ZooKeeper.
	c.eventually("master.mesos has the three masters", 20*time.Second, func() error {
		q := new(mdns.Msg)
		q.SetQuestion("master.mesos.", mdns.TypeA)
		r, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(q, net.JoinHostPort(c.nodes[2].ip, strconv.Itoa(haDNSPort)))
		if err != nil {
			return err
		}
		var ips []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				ips = append(ips, a.A.String())
			}
		}
		sort.Strings(ips)
		if strings.Join(ips, ",") != "127.0.0.21,127.0.0.22,127.0.0.23" {
			return fmt.Errorf("master.mesos: %v", ips)
		}
		return nil
	})

	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("KEEL_FAILOVER_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	l := startLoad(c, "web.example.com", "web.marathon.mesos.")
	var times []time.Duration
	for round := 1; round <= rounds; round++ {
		time.Sleep(500 * time.Millisecond) // load before the kill
		old := lead
		killed := time.Now()
		kill9(old.master)
		old.master = nil
		c.eventually(fmt.Sprintf("round %d: a new leader", round), 3*haSession+10*time.Second, func() (err error) {
			lead, err = c.leader()
			if err == nil && lead == old {
				err = fmt.Errorf("the killed master still leads")
			}
			return err
		})
		times = append(times, time.Since(killed))
		c.eventually(fmt.Sprintf("round %d: the same tasks, seen by the new leader", round), 40*time.Second, func() error {
			got, err := c.runningTasks(lead, "/web")
			if err != nil {
				return err
			}
			if strings.Join(got, ",") != strings.Join(tasks, ",") {
				return fmt.Errorf("running %v, want %v", got, tasks)
			}
			return nil
		})
		// The killed master comes back as a standby that redirects.
		old.master = startKeel(t, old.masterArgs...)
		c.eventually(fmt.Sprintf("round %d: the restarted master redirects to the leader", round), 30*time.Second, func() error {
			resp, err := noRedirect.Get("http://" + net.JoinHostPort(old.ip, strconv.Itoa(haMasterPort)) + "/master/state")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if want := "http://" + net.JoinHostPort(lead.ip, strconv.Itoa(haMasterPort)) + "/master/state"; resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != want {
				return fmt.Errorf("%d %q, want 307 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			return nil
		})
	}
	time.Sleep(time.Second)
	l.end()
	t.Logf("failover times over %d rounds: %v", rounds, times)
	t.Logf("load: %d HTTP requests (%d failed), %d DNS queries (%d failed)", l.ok.Load()+l.failed.Load(), l.failed.Load(),
		l.dnsOK.Load()+l.dnsFailed.Load(), l.dnsFailed.Load())
	if l.failed.Load() != 0 || l.dnsFailed.Load() != 0 {
		t.Fatalf("failures during failover: %d HTTP, %d DNS; first: %v", l.failed.Load(), l.dnsFailed.Load(), l.errs)
	}
	if l.ok.Load() < 100 || l.dnsOK.Load() < 100 {
		t.Fatalf("too little load to prove anything: %d HTTP, %d DNS", l.ok.Load(), l.dnsOK.Load())
	}
	// No task was launched twice: the app still has exactly its 3 tasks.
	final, err := c.runningTasks(lead, "/web")
	if err != nil || strings.Join(final, ",") != strings.Join(tasks, ",") {
		t.Fatalf("after failover: %v %v, want %v", final, err, tasks)
	}
}

// deployWeb deploys /web (3 instances, one per node, health-checked) and
// waits until every gateway routes and resolves it; it returns the
// running task IDs.
func (c *haCluster) deployWeb(id, vhost string, instances int, unique bool) []string {
	c.t.Helper()
	app := map[string]any{"id": id, "instances": instances, "cpus": 0.1, "mem": 32,
		"cmd":             `echo "hello from $MESOS_TASK_ID" > index.html && exec python3 -m http.server --bind 0.0.0.0 $PORT0`,
		"portDefinitions": []map[string]any{{"port": 0}},
		"healthChecks":    []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 10}},
		"labels":          map[string]string{"HAPROXY_0_VHOST": vhost},
		// Replace an unreachable instance at once (Marathon's default waits 300 s).
		"unreachableStrategy": map[string]int{"inactiveAfterSeconds": 0, "expungeAfterSeconds": 600}}
	if unique {
		app["constraints"] = [][]string{{"hostname", "UNIQUE"}}
	}
	if _, err := c.marathon(c.nodes[0], "POST", "/v2/apps", app, http.StatusCreated); err != nil {
		c.t.Fatal(err)
	}
	var tasks []string
	c.eventually(fmt.Sprintf("%s runs %d tasks", id, instances), 60*time.Second, func() (err error) {
		tasks, err = c.runningTasks(c.nodes[0], id)
		if err == nil && len(tasks) != instances {
			err = fmt.Errorf("running: %v", tasks)
		}
		return err
	})
	c.eventually(id+" is routed by every gateway", 30*time.Second, func() error {
		for _, n := range c.nodes {
			body, err := get("http://"+net.JoinHostPort(n.ip, strconv.Itoa(haHTTPPort))+"/", vhost)
			if err != nil || !strings.Contains(body, "hello from") {
				return fmt.Errorf("%s proxy: %v %q", n.name, err, body)
			}
		}
		return nil
	})
	return tasks
}

func (l *load) check(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %d HTTP requests (%d failed), %d DNS queries (%d failed)", what, l.ok.Load()+l.failed.Load(), l.failed.Load(),
		l.dnsOK.Load()+l.dnsFailed.Load(), l.dnsFailed.Load())
	if l.failed.Load() != 0 || l.dnsFailed.Load() != 0 {
		t.Fatalf("%s: %d HTTP and %d DNS failures; first: %v", what, l.failed.Load(), l.dnsFailed.Load(), l.errs)
	}
	if l.ok.Load() < 50 || l.dnsOK.Load() < 50 {
		t.Fatalf("%s: too little load to prove anything: %d HTTP, %d DNS", what, l.ok.Load(), l.dnsOK.Load())
	}
}

// TestHAZooKeeperAndFreeze runs the ZooKeeper and freeze scenarios on one
// cluster, each under load through every gateway: losing 1 of 3
// ZooKeeper servers changes nothing; a leader frozen (SIGSTOP) longer than
// its session is replaced and, woken, never acts as leader; losing 2 of 3
// makes every master step down while gateways keep serving, and a leader
// returns with the same tasks when ZooKeeper does.
func TestHAZooKeeperAndFreeze(t *testing.T) {
	c := startHA(t)
	var lead *haNode
	c.eventually("a leader is elected", 30*time.Second, func() (err error) {
		lead, err = c.leader()
		return err
	})
	c.eventually("the Marathon API answers", 30*time.Second, func() error {
		_, err := c.marathon(c.nodes[0], "GET", "/v2/apps", nil, http.StatusOK)
		return err
	})
	tasks := c.deployWeb("/web", "web.example.com", 3, true)

	// 1. One ZooKeeper server down: the same leader, no failure.
	l := startLoad(c, "web.example.com", "web.marathon.mesos.")
	c.zk.Stop(0)
	time.Sleep(2 * haSession)
	if now, err := c.leader(); err != nil || now != lead {
		t.Fatalf("with one ZooKeeper server down the leader changed: %v %v (was %s)", now, err, lead.name)
	}
	c.zk.StartServer(0)
	l.end()
	l.check(t, "one ZooKeeper server down")

	// 2. The leader frozen past its session: replaced; woken, it stands by.
	l = startLoad(c, "web.example.com", "web.marathon.mesos.")
	frozen := lead
	frozen.master.cmd.Process.Signal(syscall.SIGSTOP)
	c.eventually("a new leader while the old one is frozen", 4*haSession+10*time.Second, func() error {
		for _, n := range c.nodes {
			if n == frozen {
				continue
			}
			resp, err := noRedirect.Get("http://" + net.JoinHostPort(n.ip, strconv.Itoa(haMasterPort)) + "/master/state")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				lead = n
				return nil
			}
		}
		return fmt.Errorf("no other master serves yet")
	})
	frozen.master.cmd.Process.Signal(syscall.SIGCONT)
	// From the moment it wakes, the old leader must not serve as leader.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		resp, err := noRedirect.Get("http://" + net.JoinHostPort(frozen.ip, strconv.Itoa(haMasterPort)) + "/master/state")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("the woken master %s served /master/state as leader while %s leads", frozen.name, lead.name)
		}
	}
	c.eventually("the same tasks on the new leader", 40*time.Second, func() error {
		got, err := c.runningTasks(lead, "/web")
		if err == nil && strings.Join(got, ",") != strings.Join(tasks, ",") {
			err = fmt.Errorf("running %v, want %v", got, tasks)
		}
		return err
	})
	l.end()
	l.check(t, "leader frozen past its session")

	// 3. Two of three ZooKeeper servers down: no master leads, the
	// gateways keep serving; ZooKeeper back: a leader with the same tasks.
	l = startLoad(c, "web.example.com", "web.marathon.mesos.")
	c.zk.Stop(1)
	c.zk.Stop(2)
	c.eventually("every master steps down", 4*haSession+5*time.Second, func() error {
		for _, n := range c.nodes {
			resp, err := noRedirect.Get("http://" + net.JoinHostPort(n.ip, strconv.Itoa(haMasterPort)) + "/master/state")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return fmt.Errorf("%s still serves as leader", n.name)
			}
		}
		return nil
	})
	time.Sleep(2 * time.Second) // gateways serve with no master at all
	c.zk.StartServer(1)
	c.zk.StartServer(2)
	c.eventually("a leader again", 60*time.Second, func() (err error) {
		lead, err = c.leader()
		return err
	})
	c.eventually("the same tasks after ZooKeeper came back", 40*time.Second, func() error {
		got, err := c.runningTasks(lead, "/web")
		if err == nil && strings.Join(got, ",") != strings.Join(tasks, ",") {
			err = fmt.Errorf("running %v, want %v", got, tasks)
		}
		return err
	})
	l.end()
	l.check(t, "two ZooKeeper servers down")
}

// TestHAAgentPartition cuts one agent off (SIGSTOP: it stops answering
// the master's pings while its tasks run on): its task becomes
// unreachable and is replaced elsewhere; when the agent comes back its
// task is reported again and the surplus is killed, back to the app's
// instance count.
func TestHAAgentPartition(t *testing.T) {
	c := startHA(t)
	c.eventually("a leader is elected", 30*time.Second, func() error { _, err := c.leader(); return err })
	c.eventually("the Marathon API answers", 30*time.Second, func() error {
		_, err := c.marathon(c.nodes[0], "GET", "/v2/apps", nil, http.StatusOK)
		return err
	})
	c.deployWeb("/part", "part.example.com", 2, false)
	out, err := c.marathon(c.nodes[0], "GET", "/v2/apps/part", nil, http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	var r marathon.AppResponse
	json.Unmarshal(out, &r)
	var cut *haNode
	var cutTask string
	for _, tk := range r.App.Tasks {
		for _, n := range c.nodes {
			if tk.Host == n.name && cut == nil {
				cut, cutTask = n, tk.ID
			}
		}
	}
	if cut == nil {
		t.Fatalf("no task host among the nodes: %s", out)
	}
	cut.agent.cmd.Process.Signal(syscall.SIGSTOP)
	c.eventually("the cut-off task is replaced", 60*time.Second, func() error {
		got, err := c.runningTasks(c.nodes[(indexOf(c.nodes, cut)+1)%3], "/part")
		if err != nil {
			return err
		}
		if len(got) != 2 || strings.Contains(strings.Join(got, ","), cutTask) {
			return fmt.Errorf("running %v (cut off: %s)", got, cutTask)
		}
		return nil
	})
	cut.agent.cmd.Process.Signal(syscall.SIGCONT)
	c.eventually("back to 2 instances once the agent returns", 60*time.Second, func() error {
		out, err := c.marathon(c.nodes[0], "GET", "/v2/apps/part", nil, http.StatusOK)
		if err != nil {
			return err
		}
		var r marathon.AppResponse
		json.Unmarshal(out, &r)
		if r.App.TasksRunning != 2 || len(r.App.Tasks) != 2 {
			return fmt.Errorf("tasksRunning %d, %d tasks", r.App.TasksRunning, len(r.App.Tasks))
		}
		return nil
	})
}

func indexOf(nodes []*haNode, n *haNode) int {
	for i, m := range nodes {
		if m == n {
			return i
		}
	}
	return -1
}
