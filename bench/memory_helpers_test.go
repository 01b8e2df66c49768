package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/master"
	"github.com/keelhq/keel/mesosclient"
)

// The memory benchmarks measure one process while the load that fills
// the master (thousands of simulated agents and a framework) runs in
// another: the test binary started again with helperEnv set. That keeps
// the load generator's own connections and buffers out of the measured
// heap, and keeps each process under the machine's open-file limit
// (10 000 agents are 10 000 streams on each side).

// helperEnv, when set, makes the test binary a cluster helper: its value
// is the clusterSpec as JSON.
const helperEnv = "KEEL_BENCH_MEMORY_HELPER"

// TestMain runs the cluster helper instead of the tests when asked to.
func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(runClusterHelper(spec))
	}
	os.Exit(m.Run())
}

// clusterSpec is what a helper process builds: Agents simulated agents and
// one Marathon-like framework that launches Tasks tasks, TasksPerApp per
// app, spread over the agents, each with two host ports.
type clusterSpec struct {
	// Master is the base URL of the master to fill; empty: the helper runs
	// a master of its own and reports its URL.
	Master      string `json:"master,omitempty"`
	Agents      int    `json:"agents"`
	Tasks       int    `json:"tasks"`
	TasksPerApp int    `json:"tasks_per_app"`
	// ServicePortBase, when positive, gives app i's port 0 the service
	// port ServicePortBase+i. Port 1 has none, so a gateway opens one
	// listener per app.
	ServicePortBase int `json:"service_port_base,omitempty"`
	// AgentNet is the second byte of the agents' loopback IPs: agent i is
	// 127.AgentNet.(i/250).(i%250+1), so every backend address differs and
	// connecting to one is refused at once (or reaches a test's server).
	AgentNet int `json:"agent_net"`
}

// Shape of every simulated task.
const (
	firstHostPort = 31000
	taskCPUs      = 0.1
	taskMem       = 64
)

func (s clusterSpec) appName(app int) string { return fmt.Sprintf("app%05d", app) }

// agentIP is agent i's address.
func (s clusterSpec) agentIP(i int) string {
	return fmt.Sprintf("127.%d.%d.%d", s.AgentNet, i/250, i%250+1)
}

// placement is where task t runs: its app, its agent and its first host
// port. Tasks go round-robin over the agents, so an app's instances land
// on different agents, as Marathon spreads them.
func (s clusterSpec) placement(t int) (app, agentIdx, port int) {
	return t / s.TasksPerApp, t % s.Agents, firstHostPort + 2*(t/s.Agents)
}

// taskInfo is task t as the apps framework would launch it: Marathon's
// name and environment, the app's labels (a marathon-lb vhost) plus
// keel.app_id, and DiscoveryInfo ports carrying the service port.
func (s clusterSpec) taskInfo(t int, agentID mesos.ID) mesos.TaskInfo {
	app, _, port := s.placement(t)
	name := s.appName(app)
	appID := "/" + name
	id := name + "." + newBenchUUID()
	ports := []string{strconv.Itoa(port), strconv.Itoa(port + 1)}
	env := []mesos.EnvVar{
		{Name: "HOST", Value: "agent"}, {Name: "MARATHON_APP_ID", Value: appID},
		{Name: "MARATHON_APP_LABELS", Value: "HAPROXY_0_VHOST HAPROXY_GROUP"},
		{Name: "MARATHON_APP_VERSION", Value: "2025-01-01T00:00:00.000Z"}, {Name: "MESOS_TASK_ID", Value: id},
		{Name: "PORT", Value: ports[0]}, {Name: "PORT0", Value: ports[0]}, {Name: "PORT1", Value: ports[1]},
		{Name: "PORTS", Value: strings.Join(ports, ",")},
	}
	p0 := mesos.Port{Number: uint32(port), Protocol: "tcp"}
	if s.ServicePortBase > 0 {
		p0.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: mesos.LabelServicePort, Value: strconv.Itoa(s.ServicePortBase + app)}}}
	}
	return mesos.TaskInfo{
		Name: name, TaskID: mesos.ID{Value: id}, AgentID: agentID,
		Resources: mesos.Resources{mesos.ScalarResource("cpus", taskCPUs), mesos.ScalarResource("mem", taskMem),
			mesos.RangesResource("ports", mesos.Range{Begin: uint64(port), End: uint64(port + 1)})},
		Command: &mesos.CommandInfo{Value: "./server --port $PORT0", Environment: &mesos.Environment{Variables: env}},
		Labels: &mesos.Labels{Labels: []mesos.Label{{Key: "HAPROXY_0_VHOST", Value: name + ".example.com"},
			{Key: "HAPROXY_GROUP", Value: "external"}, {Key: mesos.LabelAppID, Value: appID}}},
		Discovery: &mesos.DiscoveryInfo{Visibility: "FRAMEWORK", Name: name, Version: "2025-01-01T00:00:00.000Z",
			Ports: &mesos.Ports{Ports: []mesos.Port{p0, {Number: uint32(port + 1), Protocol: "tcp"}}}},
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(3 * time.Second)}},
	}
}

func newBenchUUID() string {
	b := newUUIDBytes()
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func newUUIDBytes() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// runClusterHelper is the helper process. It speaks lines on stdout
// ("master URL", "agents SECONDS", "progress ...", "ready SECONDS",
// "error MESSAGE") and reads stdin: "go" starts the launch once the
// agents are in, and end of input (the parent is done, or gone) stops it.
func runClusterHelper(raw string) int {
	say := func(kind string, args ...any) { fmt.Println(append([]any{kind}, args...)...) }
	var spec clusterSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		say("error", "spec:", err)
		return 2
	}
	if spec.Agents <= 0 || spec.Tasks <= 0 || spec.TasksPerApp <= 0 {
		say("error", "spec needs agents, tasks and tasks_per_app")
		return 2
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := spec.Master
	if url == "" {
		u, stop, err := runOwnMaster()
		if err != nil {
			say("error", err)
			return 1
		}
		defer stop() // last: after the agents and the framework are gone
		url = u
		say("master", url)
	}
	c := newSimCluster(url, spec)
	defer c.wait()
	defer cancel() // before c.wait: the streams end with ctx
	start := time.Now()
	if err := c.subscribeAgents(ctx); err != nil {
		say("error", err)
		return 1
	}
	say("agents", time.Since(start).Seconds())
	if l, ok := <-lines; !ok || l != "go" {
		return 0
	}
	start = time.Now()
	if err := c.launchAll(ctx, func(msg string) { say("progress", msg) }); err != nil {
		say("error", err)
		return 1
	}
	say("ready", time.Since(start).Seconds())
	for range lines {
	}
	return 0
}

// runOwnMaster runs a master of the helper's own (its store in a temporary
// directory) and returns its URL and the function that stops it.
func runOwnMaster() (string, func(), error) {
	dir, err := os.MkdirTemp("", "keel-bench-master")
	if err != nil {
		return "", nil, err
	}
	store, err := coord.OpenBolt(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	url := startMaster(ctx, &wg, store, 0)
	return url, func() {
		cancel()
		wg.Wait()
		store.Close()
		os.RemoveAll(dir)
	}, nil
}

// startMaster runs a master on a loopback port until ctx ends (wg tracks
// it) and returns its URL. allocation is its allocation interval (0: the
// default, as users run it).
func startMaster(ctx context.Context, wg *sync.WaitGroup, store master.Store, allocation time.Duration) string {
	addrc := make(chan net.Addr, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		master.Run(ctx, master.Config{Listen: "127.0.0.1:0", Store: store, AllocationInterval: allocation,
			OnListen: func(a net.Addr) { addrc <- a }, Logger: quiet()})
	}()
	return "http://" + (<-addrc).String()
}

// simCluster plays the agents and the framework against one master, all
// over the public protocols: agents subscribe to the agent API and answer
// every LAUNCH with TASK_STARTING then TASK_RUNNING (UUIDs, as agentd
// sends them) and every PING with a PONG; the framework subscribes to the
// scheduler API, launches each agent's share of the tasks with one ACCEPT
// of its first offer, and acknowledges every update.
type simCluster struct {
	url    string
	spec   clusterSpec
	calls  *http.Client // agent UPDATE and PONG calls
	stream *http.Client // agent SUBSCRIBE streams, bounded by ctx and heartbeats
	agents []*simAgent
	byID   map[string]*simAgent // read-only once subscribeAgents returns

	updates chan func(context.Context) error // one job per launched task
	pongs   chan func(context.Context) error // at most one job per agent
	errc    chan error
	wg      sync.WaitGroup // stream readers and workers
}

type simAgent struct {
	idx            int
	id             string // set by the stream goroutine before ready closes
	streamID       string // set before the stream goroutine starts
	pingEarly      bool   // the stream goroutine's
	pongQueued     atomic.Bool
	ready          chan struct{}
	streamFinished chan error
}

// The master counts a PING as missed until the agent's next PONG comes
// in, and after MaxAgentPingTimeouts in a row (5 of 15 s by default)
// takes the agent for partitioned and closes its stream. A real agent
// answers its own pings; here every agent's PONG goes through one pool
// of workers and waits for those queued ahead of it. 10 000 agents ask
// for 667 PONGs a second; while the master launches, its lock and the 2
// cores busy, a PONG call takes some 40 ms (200 ms on the master of the
// time), so 4 workers answered 100 (20) a second, the wait grew by
// seconds every second and, once past 75 s, agents were cut during the
// fill. So an agent has at most one PONG queued (it answers every PING
// that came meanwhile), and the pool grows with the agents.
const agentsPerPongWorker = 200

// pongWorkers is the size of the pool that answers the agents' pings.
func pongWorkers(agents int) int { return max(4, agents/agentsPerPongWorker) }

// updateWorkers is the size of launchAll's pool that sends the agents'
// UPDATEs.
const updateWorkers = 16

func newSimCluster(url string, spec clusterSpec) *simCluster {
	return &simCluster{
		url: url, spec: spec,
		// One idle connection kept for every worker that makes agent
		// calls, so none dials anew for each call.
		calls: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil,
			MaxIdleConnsPerHost: updateWorkers + pongWorkers(spec.Agents),
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext}},
		stream: &http.Client{Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: time.Minute,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}},
		updates: make(chan func(context.Context) error, spec.Tasks+spec.Agents),
		pongs:   make(chan func(context.Context) error, spec.Agents),
		errc:    make(chan error, 1),
	}
}

func (c *simCluster) wait() { c.wg.Wait() }

// fail records the first error of a background job.
func (c *simCluster) fail(err error) {
	select {
	case c.errc <- err:
	default:
	}
}

// workers runs n goroutines taking jobs from jobs until ctx ends.
func (c *simCluster) workers(ctx context.Context, n int, jobs chan func(context.Context) error) {
	for range n {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-jobs:
					if err := job(ctx); err != nil && ctx.Err() == nil {
						c.fail(err)
					}
				}
			}
		}()
	}
}

// subscribeAgents subscribes every agent, 32 at a time, and starts the
// workers that answer for them.
func (c *simCluster) subscribeAgents(ctx context.Context) error {
	c.workers(ctx, pongWorkers(c.spec.Agents), c.pongs)
	c.agents = make([]*simAgent, c.spec.Agents)
	sem := make(chan struct{}, 32)
	errs := make(chan error, c.spec.Agents)
	var wg sync.WaitGroup
	for i := range c.agents {
		a := &simAgent{idx: i, ready: make(chan struct{}), streamFinished: make(chan error, 1)}
		c.agents[i] = a
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- c.subscribe(ctx, a)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	c.byID = make(map[string]*simAgent, len(c.agents))
	for _, a := range c.agents {
		c.byID[a.id] = a
	}
	return nil
}

func (c *simCluster) subscribe(ctx context.Context, a *simAgent) error {
	res, err := mesos.ParseResources(fmt.Sprintf("cpus:1000;mem:1000000;ports:[%d-%d]", firstHostPort, firstHostPort+1999))
	if err != nil {
		return err
	}
	body, _ := json.Marshal(agent.Call{Type: agent.CallSubscribe, Subscribe: &agent.Subscribe{
		AgentInfo: mesos.AgentInfo{Hostname: fmt.Sprintf("agent%05d.bench", a.idx), Port: 5051, Resources: res},
		IP:        c.spec.agentIP(a.idx), Version: "bench"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+agent.Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.stream.Do(req)
	if err != nil {
		return fmt.Errorf("agent %d: subscribe: %w", a.idx, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("agent %d: subscribe: %s", a.idx, resp.Status)
	}
	a.streamID = resp.Header.Get(agent.StreamIDHeader)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := mesosclient.Stream(ctx, resp.Body, time.Minute, func(ev agent.Event) { c.handleAgent(a, ev) })
		if err != nil && ctx.Err() == nil {
			c.fail(fmt.Errorf("agent %d: stream: %w", a.idx, err))
		}
		a.streamFinished <- err
	}()
	select {
	case <-a.ready:
		return nil
	case err := <-a.streamFinished:
		return fmt.Errorf("agent %d: stream ended before SUBSCRIBED: %v", a.idx, err)
	case <-time.After(time.Minute):
		return fmt.Errorf("agent %d: no SUBSCRIBED within a minute", a.idx)
	}
}

// handleAgent runs on the agent's stream goroutine, which alone writes
// a.id; it only queues work, handing each job the ID.
func (c *simCluster) handleAgent(a *simAgent, ev agent.Event) {
	switch ev.Type {
	case agent.EventSubscribed:
		a.id = ev.Subscribed.AgentID.Value
		if a.pingEarly {
			// The master's first PING comes ahead of SUBSCRIBED.
			c.pong(a)
		}
		close(a.ready)
	case agent.EventLaunch:
		id, fid, tid := a.id, ev.Launch.FrameworkID, ev.Launch.Task.TaskID
		c.updates <- func(ctx context.Context) error {
			// In order, as the agent's executor reports them.
			for _, st := range []mesos.TaskState{mesos.TaskStarting, mesos.TaskRunning} {
				status := mesos.TaskStatus{TaskID: tid, State: st, Source: mesos.SourceExecutor,
					Timestamp: float64(time.Now().UnixNano()) / 1e9, UUID: newUUIDBytes()}
				if st == mesos.TaskRunning {
					status.ContainerStatus = &mesos.ContainerStatus{ExecutorPID: 10000 + a.idx}
				}
				if err := c.agentCall(ctx, a, id, agent.Call{Type: agent.CallUpdate, Update: &agent.Update{FrameworkID: fid, Status: status}}); err != nil {
					return err
				}
			}
			return nil
		}
	case agent.EventPing:
		if a.id == "" {
			a.pingEarly = true
			return
		}
		c.pong(a)
	}
}

// pong queues a PONG for a unless one is queued already: the master
// takes any PONG for an answer to every PING before it. Called on a's
// stream goroutine. The send cannot block: pongs has room for one job
// per agent.
func (c *simCluster) pong(a *simAgent) {
	if !a.pongQueued.CompareAndSwap(false, true) {
		return
	}
	id := a.id
	c.pongs <- func(ctx context.Context) error {
		// Cleared before the call, so that a PING arriving during it
		// queues the next PONG rather than being taken as answered.
		a.pongQueued.Store(false)
		return c.agentCall(ctx, a, id, agent.Call{Type: agent.CallPong})
	}
}

// agentCall POSTs one agent call, retrying a few times; the master
// treats a repeated update (same UUID) as the retry it is.
func (c *simCluster) agentCall(ctx context.Context, a *simAgent, id string, call agent.Call) error {
	call.AgentID = mesos.NewID(id)
	body, _ := json.Marshal(call)
	var err error
	for attempt := 1; ; attempt++ {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, c.url+agent.Path, bytes.NewReader(body))
		if rerr != nil {
			return rerr
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(agent.StreamIDHeader, a.streamID)
		resp, derr := c.calls.Do(req)
		if derr == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				return nil
			}
			derr = fmt.Errorf("answered %s", resp.Status)
		}
		err = fmt.Errorf("agent %d: %s: %w", a.idx, call.Type, derr)
		if attempt == 5 || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// launchAll subscribes the framework and returns once every task is
// RUNNING and every update acknowledged (the master's final state).
func (c *simCluster) launchAll(ctx context.Context, progress func(string)) error {
	c.workers(ctx, updateWorkers, c.updates)
	sched := mesosclient.NewScheduler(c.url)
	// Framework calls: ACCEPTs, then acknowledgements (two per task).
	fwJobs := make(chan func(context.Context) error, 2*c.spec.Tasks+c.spec.Agents+16)
	c.workers(ctx, 16, fwJobs)
	perAgent := make([][]int, c.spec.Agents)
	for t := 0; t < c.spec.Tasks; t++ {
		_, ai, _ := c.spec.placement(t)
		perAgent[ai] = append(perAgent[ai], t)
	}
	// Tasks whose RUNNING update was acknowledged; a repeated update (a
	// retry) is counted once.
	var mu sync.Mutex
	runningSet := map[string]bool{}
	var running atomic.Int64
	done := make(chan struct{})
	launched, suppressed := 0, false // owned by the stream goroutine
	call := func(ctx context.Context, cl mesos.Call) error {
		var err error
		for attempt := 1; attempt <= 5; attempt++ {
			if err = sched.Call(ctx, cl); err == nil || cl.Type == mesos.CallAccept || attempt == 5 {
				break // an ACCEPT is not repeated: its offers are spent
			}
			select {
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("framework: %s: %w", cl.Type, err)
		}
		return nil
	}
	handle := func(ev mesos.Event) {
		switch ev.Type {
		case mesos.EventOffers:
			var decline []mesos.ID
			refuse := 3600.0
			for _, o := range ev.Offers.Offers {
				a := c.byID[o.AgentID.Value]
				if a == nil || len(perAgent[a.idx]) == 0 {
					decline = append(decline, o.ID)
					continue
				}
				infos := make([]mesos.TaskInfo, 0, len(perAgent[a.idx]))
				for _, t := range perAgent[a.idx] {
					infos = append(infos, c.spec.taskInfo(t, o.AgentID))
				}
				perAgent[a.idx] = nil
				launched++
				accept := mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o.ID},
					Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: infos}}},
					Filters:    &mesos.Filters{RefuseSeconds: &refuse}}}
				fwJobs <- func(ctx context.Context) error { return call(ctx, accept) }
			}
			if len(decline) > 0 {
				d := mesos.Call{Type: mesos.CallDecline, Decline: &mesos.Decline{OfferIDs: decline, Filters: &mesos.Filters{RefuseSeconds: &refuse}}}
				fwJobs <- func(ctx context.Context) error { return call(ctx, d) }
			}
			if launched == c.spec.Agents && !suppressed {
				suppressed = true
				fwJobs <- func(ctx context.Context) error { return call(ctx, mesos.Call{Type: mesos.CallSuppress}) }
			}
		case mesos.EventUpdate:
			st := ev.Update.Status
			if st.State != mesos.TaskStarting && st.State != mesos.TaskRunning {
				c.fail(fmt.Errorf("task %s: %s: %s", st.TaskID.Value, st.State, st.Message))
				return
			}
			if len(st.UUID) == 0 || st.AgentID == nil {
				return
			}
			ack := mesos.Call{Type: mesos.CallAcknowledge, Acknowledge: &mesos.Acknowledge{AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID}}
			isRunning := st.State == mesos.TaskRunning
			fwJobs <- func(ctx context.Context) error {
				if err := call(ctx, ack); err != nil {
					return err
				}
				if !isRunning {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				if !runningSet[ack.Acknowledge.TaskID.Value] {
					runningSet[ack.Acknowledge.TaskID.Value] = true
					if running.Add(1) == int64(c.spec.Tasks) {
						close(done)
					}
				}
				return nil
			}
		}
	}
	info := mesos.FrameworkInfo{User: "bench", Name: "marathon", FailoverTimeout: 7 * 24 * 3600, Checkpoint: true, Roles: []string{"*"},
		Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityTaskKillingState}, {Type: mesos.CapabilityPartitionAware}, {Type: mesos.CapabilityMultiRole}}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := sched.Subscribe(ctx, info, handle); err != nil && ctx.Err() == nil {
			c.fail(fmt.Errorf("framework: stream: %w", err))
		}
	}()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-done:
			return nil
		case err := <-c.errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			progress(fmt.Sprintf("%.0fs: %d of %d tasks running and acknowledged", time.Since(start).Seconds(), running.Load(), c.spec.Tasks))
		}
	}
}

// helperProc is a running cluster helper seen from the parent.
type helperProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	exited chan struct{}
	stderr lockedBuffer
	once   sync.Once
}

// startHelper starts a cluster helper for spec; it is stopped at cleanup
// at the latest.
func startHelper(tb testing.TB, spec clusterSpec) *helperProc {
	tb.Helper()
	raw, _ := json.Marshal(spec)
	h := &helperProc{lines: make(chan string, 1024), exited: make(chan struct{})}
	h.cmd = exec.Command(os.Args[0], "-test.run=^$")
	h.cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.cmd.Stdout = &lineWriter{lines: h.lines}
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		h.cmd.Wait()
		close(h.exited)
	}()
	tb.Cleanup(h.stop)
	return h
}

// expect waits for the helper's next line of kind and returns the rest of
// it, failing on an error line, on exit or after timeout. Progress lines
// are kept for the failure message only: a benchmark's log is cut after
// a few lines, and its figures matter more.
func (h *helperProc) expect(tb testing.TB, kind string, timeout time.Duration) string {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	progress := "none"
	for {
		var line string
		select {
		case line = <-h.lines:
		case <-h.exited:
			select {
			case line = <-h.lines:
			default:
				tb.Fatalf("cluster helper exited before %q (last progress: %s): %s", kind, progress, h.stderr.String())
			}
		case <-deadline.C:
			tb.Fatalf("cluster helper: no %q within %v (last progress: %s)", kind, timeout, progress)
		}
		k, rest, _ := strings.Cut(line, " ")
		switch k {
		case kind:
			return rest
		case "progress":
			progress = rest
		case "error":
			tb.Fatalf("cluster helper: %s", rest)
		}
	}
}

// seconds reads a helper's "agents"/"ready" figure.
func (h *helperProc) seconds(tb testing.TB, kind string, timeout time.Duration) time.Duration {
	tb.Helper()
	f, err := strconv.ParseFloat(h.expect(tb, kind, timeout), 64)
	if err != nil {
		tb.Fatalf("cluster helper: %s: %v", kind, err)
	}
	return time.Duration(f * float64(time.Second))
}

func (h *helperProc) send(tb testing.TB, line string) {
	tb.Helper()
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		tb.Fatal(err)
	}
}

// stop ends the helper: end of input, then a kill if it lingers.
func (h *helperProc) stop() {
	h.once.Do(func() {
		h.stdin.Close()
		select {
		case <-h.exited:
		case <-time.After(time.Minute):
			h.cmd.Process.Kill()
			<-h.exited
		}
	})
}

// lineWriter hands every complete line written to it to lines.
type lineWriter struct {
	buf   []byte
	lines chan<- string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.lines <- string(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// liveHeap collects garbage and returns the bytes of live heap objects
// and of goroutine stacks. Two cycles: the first only moves sync.Pool
// contents to the victim cache, the second frees them.
func liveHeap() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

// grew is after-before, or 0 when the heap shrank.
func grew(before, after uint64) uint64 {
	if after > before {
		return after - before
	}
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux 4.0+),
// so a benchmark's peak is its own, not an earlier one's in this process.
func resetPeakRSS() error { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// procStatus returns a "kB" field of /proc/PID/status ("self" for pid 0)
// in bytes: VmHWM is the peak resident set, VmRSS the current one.
func procStatus(pid int, field string) (uint64, error) {
	p := "self"
	if pid > 0 {
		p = strconv.Itoa(pid)
	}
	b, err := os.ReadFile("/proc/" + p + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseUint(f[0], 10, 64)
				return n << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%s/status", field, p)
}

// randomNet returns a second IP byte in [lo, hi) so that runs on one
// machine rarely share loopback addresses.
func randomNet(lo, hi int) int {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(hi-lo)))
	if err != nil {
		return lo
	}
	return lo + int(n.Int64())
}

const (
	mib = 1 << 20
	kib = 1 << 10
)

var errNoMetric = errors.New("metric not reported")

// masterMetric reads one figure of the master's GET_METRICS.
func masterMetric(ctx context.Context, url, name string) (float64, error) {
	resp, err := mesosclient.NewOperator(url).Call(ctx, mesos.OpGetMetrics)
	if err != nil {
		return 0, err
	}
	for _, m := range resp.GetMetrics.Metrics {
		if m.Name == name {
			return m.Value, nil
		}
	}
	return 0, fmt.Errorf("%s: %w", name, errNoMetric)
}
