package agentd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/reconnect"
	"github.com/keelhq/keel/mesosclient"
)

// Config configures an agent.
type Config struct {
	// Master is the master's base URL, e.g. "http://127.0.0.1:5050".
	Master string
	// Leader, when set, names the leading master at every (re)connect
	// instead of Master (an HA set: coord.Detector).
	Leader mesosclient.Resolver
	// WorkDir holds the sandboxes (WorkDir/sandboxes/<framework>/<task>/<run>/).
	WorkDir string
	// Hostname is reported to the master (default os.Hostname()).
	Hostname string
	// IP is where tasks on this agent are reachable (default 127.0.0.1).
	IP string
	// Listen is the agent's own HTTP address; "" runs no HTTP server.
	Listen string
	// Resources to offer; nil detects them (DetectResources).
	Resources  mesos.Resources
	Attributes []mesos.Attribute
	// UpdateRetry is how long an unacknowledged update waits before it is
	// sent again (default 2s).
	UpdateRetry time.Duration
	// KillGrace is the SIGTERM-to-SIGKILL time for tasks without a kill
	// policy (default 3s).
	KillGrace  time.Duration
	Registerer prometheus.Registerer
	// Gatherer, when set, is served on /metrics.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Version is reported to the master.
	Version string
	// KillingDrain is how long a task stays up between TASK_KILLING and its
	// SIGTERM, so gateways stop sending it requests before it stops
	// (default 1s; only for frameworks that understand TASK_KILLING).
	KillingDrain time.Duration
	// KillTasksOnExit kills every task when Run returns (keel dev). Without
	// it tasks outlive the agent, as with Mesos, and the next agent on the
	// same work dir re-attaches to them.
	KillTasksOnExit bool
	// Cleanup kills the tasks of a previous run at start instead of
	// re-attaching to them (Mesos' --recover=cleanup).
	Cleanup bool
	// Containerizers are the enabled containerizers: "mesos" (processes,
	// always on) and "docker" (tasks of container type DOCKER).
	Containerizers []string
	// DockerSocket is the Docker Engine's socket (default
	// /var/run/docker.sock), or its URL.
	DockerSocket string
	// DockerAllowPrivileged lets tasks ask for privileged containers.
	DockerAllowPrivileged bool
	// Isolation is Mesos' --isolation for process tasks:
	// "cgroups/cpu,cgroups/mem" gives each task its own cgroup with a CPU
	// share and a hard memory limit, "posix/cpu,posix/mem" limits
	// nothing; "" means cgroups when the hierarchy is there and writable,
	// else posix.
	Isolation string
	// CgroupsHierarchy is where cgroups are mounted (default
	// /sys/fs/cgroup); v1 or v2 is detected.
	CgroupsHierarchy string
	// CgroupsRoot is the cgroup the tasks' cgroups go under (default
	// keel).
	CgroupsRoot string
	// NoSwitchUser runs every task as the agent's user even when its
	// command names another (Mesos' --switch_user=false).
	NoSwitchUser bool
	// GCDelay is how long the sandbox of a finished task is kept at most
	// (default 1 week, Mesos' --gc_delay).
	GCDelay time.Duration
	// GCDiskHeadroom is the share of the work dir's filesystem to keep
	// free (default 0.1; Mesos' --gc_disk_headroom): at every disk check,
	// sandboxes of finished tasks older than
	// GCDelay * max(0, 1 - GCDiskHeadroom - usage) are removed.
	GCDiskHeadroom float64
	// DiskWatchInterval is how often disk usage is checked and sandboxes
	// collected (default 1m).
	DiskWatchInterval time.Duration
}

// Agent is a running agent.
type Agent struct {
	cfg         Config
	log         *slog.Logger
	hc          *http.Client
	checkClient *http.Client // health checks: no keep-alive, no redirects
	metrics     *metrics
	updates     *updateManager
	port        int
	docker      *dockerRuntime // nil without the docker containerizer
	cgroups     *cgroupSet     // nil without cgroups isolation
	// now and diskUsage are the sandbox GC's clock and disk gauge
	// (replaced in tests).
	now       func() time.Time
	diskUsage func(path string) (float64, error)
	// pong asks sendLoop to answer the master's PING (buffered: pings
	// that arrive while one is pending merge).
	pong chan struct{}

	// agentID mirrors id for readers that cannot take mu.
	agentID atomic.Pointer[string]

	mu       sync.Mutex
	id       string
	streamID string
	// callURL is where calls of the current subscription go: the master
	// that holds the stream (after a standby's redirect).
	callURL  string
	tasks    map[string]*task // live tasks by ID
	stopping bool             // set at shutdown: no new launches
	detached chan struct{}    // closed when the agent exits leaving tasks running
	wg       sync.WaitGroup   // task process waiters
	// preparing holds the sandboxes of tasks being launched, not yet in
	// tasks, so the GC leaves them alone.
	preparing map[string]bool
}

// Run runs an agent until ctx is done; see New and (*Agent).Run.
func Run(ctx context.Context, cfg Config) error {
	a, err := New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// New validates cfg and prepares the work dir.
func New(cfg Config) (*Agent, error) {
	if cfg.Master == "" && cfg.Leader == nil {
		return nil, errors.New("agentd: config: Master or Leader is required")
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("agentd: config: WorkDir is required")
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("agentd: work dir: %w", err)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	if cfg.Resources == nil {
		cfg.Resources = DetectResources(cfg.WorkDir)
	}
	cfg.Resources = cfg.Resources.Normalize()
	if cfg.UpdateRetry <= 0 {
		cfg.UpdateRetry = 2 * time.Second
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 3 * time.Second
	}
	if cfg.KillingDrain < 0 {
		cfg.KillingDrain = 0
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{
		cfg: cfg, log: log.With("component", "agent"), metrics: newMetrics(cfg.Registerer), tasks: map[string]*task{},
		detached: make(chan struct{}), pong: make(chan struct{}, 1), preparing: map[string]bool{},
		now: time.Now, diskUsage: diskUsage,
		hc: &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   4,
		}},
		port: 5051,
		checkClient: &http.Client{
			Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	for _, c := range cfg.Containerizers {
		switch c {
		case "mesos":
		case "docker":
			if a.docker != nil {
				continue
			}
			if cfg.DockerSocket == "" {
				cfg.DockerSocket = "/var/run/docker.sock"
			}
			d, err := newDockerRuntime(cfg.DockerSocket, cfg.DockerAllowPrivileged)
			if err != nil {
				return nil, err
			}
			a.docker = d
		default:
			return nil, fmt.Errorf("agentd: config: unknown containerizer %q (want mesos or docker)", c)
		}
	}
	if cfg.Listen != "" {
		if _, p, err := net.SplitHostPort(cfg.Listen); err == nil {
			a.port, _ = strconv.Atoi(p)
		}
	}
	if b, err := os.ReadFile(a.idFile()); err == nil {
		a.id = strings.TrimSpace(string(b))
	}
	a.updates = newUpdateManager(cfg.UpdateRetry, a.metrics, filepath.Join(a.metaDir(), "updates.json"))
	if err := os.MkdirAll(a.metaDir(), 0o755); err != nil {
		return nil, fmt.Errorf("agentd: work dir: %w", err)
	}
	if err := a.updates.load(); err != nil {
		a.log.Error("could not load pending status updates", "err", err)
	}
	if err := a.setupIsolation(); err != nil {
		return nil, err
	}
	if err := a.setupGC(); err != nil {
		return nil, err
	}
	a.recoverTasks(cfg.Cleanup)
	if err := becomeSubreaper(); err != nil {
		a.log.Warn("cannot become child subreaper; orphans of tasks are left to PID 1", "err", err)
	}
	return a, nil
}

// Run serves until ctx is done. On the way out it kills every task it
// started and tries for up to 2s to deliver their final updates.
func (a *Agent) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	var ln net.Listener
	if a.cfg.Listen != "" {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Listen); err != nil {
			return fmt.Errorf("agentd: listen: %w", err)
		}
		srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("agentd: serve: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	// The master connection outlives ctx: on the way out the agent kills
	// its tasks and delivers their final updates before it disconnects.
	connCtx, stopConn := context.WithCancel(context.Background())
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		a.sendLoop(connCtx)
	}()
	g.Go(func() error { a.connectLoop(connCtx); return nil })
	g.Go(func() error { a.gcLoop(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		if a.cfg.KillTasksOnExit {
			a.killAll()
		} else {
			a.mu.Lock()
			a.stopping = true
			a.mu.Unlock()
			close(a.detached)
		}
		a.wg.Wait()
		flush, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if a.connected() {
			a.updates.waitEmpty(flush)
		}
		cancel()
		stopConn()
		return nil
	})
	err := g.Wait()
	<-sendDone
	if a.docker != nil {
		a.docker.cli.Close()
	}
	a.log.Info("agent stopped")
	return err
}

// idFile holds the agent ID, so a restarted agent re-registers as itself.
func (a *Agent) idFile() string { return filepath.Join(a.cfg.WorkDir, "agent.id") }

// writeFileAtomic writes data to path through a synced temp file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (a *Agent) connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.streamID != ""
}

// connectLoop keeps a subscription to the master.
func (a *Agent) connectLoop(ctx context.Context) {
	reconnect.Loop(ctx, func(ctx context.Context) error {
		err := a.subscribe(ctx)
		a.metrics.connected.Set(0)
		a.mu.Lock()
		a.streamID = ""
		a.mu.Unlock()
		return err
	}, func(err error, wait time.Duration) {
		a.log.Warn("master connection lost", "err", err, "retry_in", wait)
	})
}

func (a *Agent) subscribe(ctx context.Context) error {
	a.mu.Lock()
	info := mesos.AgentInfo{Hostname: a.cfg.Hostname, Port: a.port, Resources: a.cfg.Resources, Attributes: a.cfg.Attributes}
	if a.id != "" {
		info.ID = mesos.NewID(a.id)
	}
	var running []mesos.Task
	for _, t := range a.tasks {
		running = append(running, t.mesosTask(a.id))
	}
	a.mu.Unlock()
	body, _ := json.Marshal(agent.Call{Type: agent.CallSubscribe, Subscribe: &agent.Subscribe{
		AgentInfo: info, IP: a.cfg.IP, Version: a.cfg.Version, Tasks: running}})
	base := a.cfg.Master
	if a.cfg.Leader != nil {
		var err error
		if base, err = a.cfg.Leader(ctx); err != nil {
			return fmt.Errorf("agentd: find the leading master: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+agent.Path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("agentd: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("agentd: subscribe: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return fmt.Errorf("agentd: subscribe: master answered %d: %s", resp.StatusCode, msg)
	}
	stream := resp.Header.Get(agent.StreamIDHeader)
	a.mu.Lock()
	a.callURL = resp.Request.URL.String()
	a.mu.Unlock()
	idle := 45 * time.Second
	return mesosclient.Stream(ctx, resp.Body, idle, func(ev agent.Event) { a.handle(ctx, stream, ev) })
}

func (a *Agent) handle(ctx context.Context, stream string, ev agent.Event) {
	switch ev.Type {
	case agent.EventSubscribed:
		if ev.Subscribed == nil {
			return
		}
		a.mu.Lock()
		first := a.id == ""
		a.id, a.streamID = ev.Subscribed.AgentID.Value, stream
		a.mu.Unlock()
		if err := writeFileAtomic(a.idFile(), []byte(ev.Subscribed.AgentID.Value+"\n")); err != nil {
			a.log.Error("could not checkpoint agent ID", "err", err)
		}
		id := ev.Subscribed.AgentID.Value
		a.agentID.Store(&id)
		a.metrics.connected.Set(1)
		a.log.Info("registered with master", "agent_id", a.id, "master", a.callURL, "first", first, "resources", a.cfg.Resources.String())
		a.updates.resendAll()
	case agent.EventLaunch:
		if ev.Launch != nil {
			a.launch(ctx, ev.Launch)
		}
	case agent.EventKill:
		if ev.Kill != nil {
			a.kill(ev.Kill)
		}
	case agent.EventAcknowledged:
		if ev.Acknowledged != nil {
			a.updates.ack(ev.Acknowledged.TaskID.Value, ev.Acknowledged.UUID)
		}
	case agent.EventPing:
		select {
		case a.pong <- struct{}{}:
		default:
		}
	case agent.EventError:
		if ev.Error != nil {
			a.log.Warn("master reported an error", "message", ev.Error.Message)
		}
	}
}

// post sends one UPDATE call; false means it should be retried.
func (a *Agent) post(ctx context.Context, fid mesos.ID, st mesos.TaskStatus) bool {
	ok := a.call(ctx, agent.Call{Type: agent.CallUpdate, Update: &agent.Update{FrameworkID: fid, Status: st}})
	if ok {
		a.metrics.updatesSent.Inc()
	}
	return ok
}

// call POSTs c (with this agent's ID) on the current subscription and
// reports whether the master accepted it.
func (a *Agent) call(ctx context.Context, c agent.Call) bool {
	a.mu.Lock()
	id, stream, url := a.id, a.streamID, a.callURL
	a.mu.Unlock()
	if stream == "" {
		return false
	}
	c.AgentID = mesos.NewID(id)
	body, _ := json.Marshal(c)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agent.StreamIDHeader, stream)
	resp, err := a.hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted
}

// sendLoop delivers the head of every task's update queue, again and
// again until acknowledged.
func (a *Agent) sendLoop(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		for _, u := range a.updates.due(time.Now()) {
			if !a.post(ctx, u.fid, u.status) {
				a.updates.failed(u.status.TaskID.Value)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.updates.wake:
		case <-a.pong:
			a.call(ctx, agent.Call{Type: agent.CallPong})
		}
	}
}

// status records a new status for t and queues it for the master. The
// caller holds mu when t is shared (in a.tasks).
func (a *Agent) status(t *task, state mesos.TaskState, reason, msg string) {
	src := mesos.SourceExecutor
	if state == mesos.TaskError || reason == mesos.ReasonContainerLaunchFailed || reason == mesos.ReasonTaskInvalid ||
		reason == reasonContainerLimitationMemory {
		src = mesos.SourceAgent
	}
	aid := ""
	if p := a.agentID.Load(); p != nil {
		aid = *p
	}
	st := mesos.TaskStatus{TaskID: t.info.TaskID, State: state, Reason: reason, Message: msg, Source: src,
		AgentID: mesos.NewID(aid), Timestamp: float64(time.Now().UnixNano()) / 1e9, UUID: newUUID()}
	if state == mesos.TaskRunning && t.pid > 0 {
		st.ContainerStatus = &mesos.ContainerStatus{ExecutorPID: t.pid}
	}
	if state == mesos.TaskRunning && t.ctr != nil {
		st.ContainerStatus = t.ctr.containerStatus(a.cfg.IP)
	}
	t.state = state
	if t.last != nil && st.Healthy == nil && state == mesos.TaskRunning {
		st.Healthy = t.last.Healthy
	}
	last := st
	t.last = &last
	a.updates.push(t.fid, st)
}

// statusHealth reports a new health check result (TASK_RUNNING with
// healthy). Caller holds mu.
func (a *Agent) statusHealth(t *task, healthy bool, msg string) {
	aid := ""
	if p := a.agentID.Load(); p != nil {
		aid = *p
	}
	h := healthy
	cs := &mesos.ContainerStatus{ExecutorPID: t.pid}
	if t.ctr != nil {
		cs = t.ctr.containerStatus(a.cfg.IP)
	}
	st := mesos.TaskStatus{TaskID: t.info.TaskID, State: mesos.TaskRunning, Healthy: &h,
		Reason: mesos.ReasonHealthCheckStatusUpdated, Message: msg, Source: mesos.SourceExecutor, AgentID: mesos.NewID(aid),
		Timestamp: float64(time.Now().UnixNano()) / 1e9, UUID: newUUID(),
		ContainerStatus: cs}
	last := st
	t.last = &last
	a.updates.push(t.fid, st)
}

func newUUID() []byte {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}

// handler serves the agent's HTTP endpoints.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("OK")) })
	mux.HandleFunc("GET /state", readOnlyCORS(a.handleState))
	mux.HandleFunc("GET /state.json", readOnlyCORS(a.handleState))
	mux.HandleFunc("GET /files/browse", readOnlyCORS(a.handleBrowse))
	mux.HandleFunc("GET /files/read", readOnlyCORS(a.handleRead))
	mux.HandleFunc("GET /files/download", a.handleDownload)
	if a.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
