package agentd

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/api/recordio"
	"github.com/keelhq/keel/internal/leakcheck"
)

// fakeMaster speaks the master side of the agent protocol.
type fakeMaster struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	out     chan agent.Event
	updates []mesos.TaskStatus
	subs    []agent.Subscribe
	autoAck bool
	drop    chan struct{}
}

func newFakeMaster(t *testing.T) *fakeMaster {
	m := &fakeMaster{t: t, out: make(chan agent.Event, 100), autoAck: true, drop: make(chan struct{}, 1)}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMaster) serve(w http.ResponseWriter, r *http.Request) {
	var call agent.Call
	json.NewDecoder(r.Body).Decode(&call)
	switch call.Type {
	case agent.CallSubscribe:
		m.mu.Lock()
		m.subs = append(m.subs, *call.Subscribe)
		m.mu.Unlock()
		w.Header().Set(agent.StreamIDHeader, "s1")
		w.WriteHeader(200)
		write := func(ev agent.Event) bool {
			b, _ := json.Marshal(ev)
			if _, err := w.Write(recordio.Frame(b)); err != nil {
				return false
			}
			w.(http.Flusher).Flush()
			return true
		}
		write(agent.Event{Type: agent.EventSubscribed, Subscribed: &agent.Subscribed{AgentID: mesos.ID{Value: "A1"}, HeartbeatIntervalSeconds: 1}})
		for {
			select {
			case ev := <-m.out:
				if !write(ev) {
					return
				}
			case <-m.drop:
				return
			case <-r.Context().Done():
				return
			}
		}
	case agent.CallUpdate:
		m.mu.Lock()
		dup := false
		for _, u := range m.updates {
			dup = dup || string(u.UUID) == string(call.Update.Status.UUID)
		}
		if !dup || !m.autoAck { // retries are recorded only when they are what a test looks for
			m.updates = append(m.updates, call.Update.Status)
		}
		ack := m.autoAck
		m.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		if ack {
			m.out <- agent.Event{Type: agent.EventAcknowledged, Acknowledged: &agent.Acknowledged{TaskID: call.Update.Status.TaskID, UUID: call.Update.Status.UUID}}
		}
	}
}

// states returns the states reported for a task, in order.
func (m *fakeMaster) states(id string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, u := range m.updates {
		if u.TaskID.Value == id {
			out = append(out, string(u.State))
		}
	}
	return out
}

func (m *fakeMaster) waitStates(id string, want ...string) []mesos.TaskStatus {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := strings.Join(m.states(id), ",")
		if got == strings.Join(want, ",") {
			m.mu.Lock()
			defer m.mu.Unlock()
			var out []mesos.TaskStatus
			for _, u := range m.updates {
				if u.TaskID.Value == id {
					out = append(out, u)
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("task %s: states %s, want %s", id, got, strings.Join(want, ","))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func launch(id, cmd string, res mesos.Resources) agent.Event {
	if res == nil {
		res = mesos.Resources{mesos.ScalarResource("cpus", 0.1), mesos.ScalarResource("mem", 16)}
	}
	return agent.Event{Type: agent.EventLaunch, Launch: &agent.Launch{FrameworkID: mesos.ID{Value: "F"},
		FrameworkInfo: mesos.FrameworkInfo{Name: "f", Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityTaskKillingState}}},
		Task: mesos.TaskInfo{Name: id, TaskID: mesos.ID{Value: id}, AgentID: mesos.ID{Value: "A1"}, Resources: res,
			Command: &mesos.CommandInfo{Value: cmd, Environment: &mesos.Environment{Variables: []mesos.EnvVar{{Name: "GREETING", Value: "hi"}}}}}}}
}

func startAgent(t *testing.T, m *fakeMaster) (string, func()) {
	t.Helper()
	return startAgentIn(t, m, t.TempDir(), true)
}

// startAgentIn runs an agent on dir; kill says whether it kills its tasks
// when stopped.
func startAgentIn(t *testing.T, m *fakeMaster, dir string, kill bool) (string, func()) {
	t.Helper()
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	res, _ := mesos.ParseResources("cpus:1;mem:256;disk:100;ports:[31000-31010]")
	go func() {
		done <- Run(ctx, Config{Master: m.srv.URL, WorkDir: dir, Hostname: "h1", Resources: res, UpdateRetry: 200 * time.Millisecond,
			KillGrace: time.Second, KillTasksOnExit: kill})
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("agent did not stop within 10s")
		}
	}
	return dir, stop
}

func TestLifecycle(t *testing.T) {
	m := newFakeMaster(t)
	dir, stop := startAgent(t, m)

	m.out <- launch("ok", `echo "$GREETING $MESOS_TASK_ID"`, nil)
	m.waitStates("ok", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	matches, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "ok", "*", "stdout"))
	if len(matches) != 1 {
		t.Fatalf("sandbox stdout: %v", matches)
	}
	if out, _ := os.ReadFile(matches[0]); strings.TrimSpace(string(out)) != "hi ok" {
		t.Fatalf("stdout %q", out)
	}

	m.out <- launch("bad", "exit 3", nil)
	sts := m.waitStates("bad", "TASK_STARTING", "TASK_RUNNING", "TASK_FAILED")
	if last := sts[2]; !strings.Contains(last.Message, "status 3") || last.Reason != mesos.ReasonCommandExecutorFailed {
		t.Fatalf("failed status: %+v", last)
	}

	m.out <- launch("big", "true", mesos.Resources{mesos.ScalarResource("cpus", 8)})
	if st := m.waitStates("big", "TASK_ERROR")[0]; !strings.Contains(st.Message, "free") {
		t.Fatalf("oversized: %+v", st)
	}
	m.out <- agent.Event{Type: agent.EventLaunch, Launch: &agent.Launch{FrameworkID: mesos.ID{Value: "F"}, Task: mesos.TaskInfo{
		TaskID: mesos.ID{Value: "dock"}, Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.1)},
		Container: &mesos.ContainerInfo{Type: "DOCKER", Docker: &mesos.DockerInfo{Image: "x"}}}}}
	m.waitStates("dock", "TASK_FAILED")

	// Kill: KILLING then KILLED, and the whole process group is gone.
	m.out <- launch("sleeper", "sleep 30 & sleep 30; wait", nil)
	sts = m.waitStates("sleeper", "TASK_STARTING", "TASK_RUNNING")
	pid := sts[1].ContainerStatus.ExecutorPID
	m.out <- agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: "sleeper"}}}
	m.waitStates("sleeper", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	if err := syscall.Kill(-pid, 0); err == nil {
		t.Fatalf("process group %d still alive after kill", pid)
	}
	// Kill of an unknown task: TASK_LOST.
	m.out <- agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: "ghost"}}}
	m.waitStates("ghost", "TASK_LOST")

	// Shutdown kills what still runs.
	m.out <- launch("linger", "sleep 30", nil)
	sts = m.waitStates("linger", "TASK_STARTING", "TASK_RUNNING")
	pid = sts[1].ContainerStatus.ExecutorPID
	stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("task process %d survived agent shutdown", pid)
	}
}

func TestUpdatesRetriedUntilAcked(t *testing.T) {
	m := newFakeMaster(t)
	m.autoAck = false
	_, stop := startAgent(t, m)
	defer stop()
	m.out <- launch("r", "true", nil)
	// Only the head of the queue is in flight: STARTING is resent until acked.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := m.states("r")
		if len(s) >= 3 {
			for _, st := range s {
				if st != "TASK_STARTING" {
					t.Fatalf("update sent before the one ahead of it was acked: %v", s)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not retried: %v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.mu.Lock()
	first := m.updates[0]
	m.autoAck = true
	m.mu.Unlock()
	m.out <- agent.Event{Type: agent.EventAcknowledged, Acknowledged: &agent.Acknowledged{TaskID: first.TaskID, UUID: first.UUID}}
	deadline = time.Now().Add(5 * time.Second)
	for !strings.HasSuffix(strings.Join(m.states("r"), ","), "TASK_RUNNING,TASK_FINISHED") {
		if time.Now().After(deadline) {
			t.Fatalf("rest of the queue not delivered in order: %v", m.states("r"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReconnectKeepsAgentID(t *testing.T) {
	m := newFakeMaster(t)
	_, stop := startAgent(t, m)
	defer stop()
	m.out <- launch("keep", "sleep 30", nil)
	m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING")
	m.drop <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		n := len(m.subs)
		var last agent.Subscribe
		if n > 0 {
			last = m.subs[n-1]
		}
		m.mu.Unlock()
		if n >= 2 {
			if last.AgentInfo.ID.Val() != "A1" || len(last.Tasks) != 1 || last.Tasks[0].TaskID.Value != "keep" {
				t.Fatalf("re-subscribe: %+v", last)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("agent did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDetectResources(t *testing.T) {
	r := DetectResources(t.TempDir())
	if r.Scalar("cpus") <= 0 || r.Scalar("mem") < 256 || r.Scalar("disk") < 1024 || len(r.Ranges("ports")) != 1 {
		t.Fatalf("detected %s", r)
	}
}

func TestRecoveryAfterRestart(t *testing.T) {
	m := newFakeMaster(t)
	dir := t.TempDir()
	_, stop := startAgentIn(t, m, dir, false)
	m.out <- launch("keep", "sleep 30", nil)
	m.out <- launch("die", "sleep 30", nil)
	keep := m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING")[1].ContainerStatus.ExecutorPID
	die := m.waitStates("die", "TASK_STARTING", "TASK_RUNNING")[1].ContainerStatus.ExecutorPID
	stop()
	// The agent is gone; its tasks are not.
	if err := syscall.Kill(keep, 0); err != nil {
		t.Fatalf("task died with the agent: %v", err)
	}
	defer syscall.Kill(-keep, syscall.SIGKILL)
	// One task dies while no agent runs.
	syscall.Kill(-die, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); processStartTime(die) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("task process did not die")
		}
	}

	_, stop = startAgentIn(t, m, dir, true)
	defer stop()
	// The new agent re-registers as the same agent with the task it found.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		last := m.subs[len(m.subs)-1]
		n := len(m.subs)
		m.mu.Unlock()
		if n >= 2 {
			if last.AgentInfo.ID.Val() != "A1" || len(last.Tasks) != 1 || last.Tasks[0].TaskID.Value != "keep" || last.Tasks[0].State != mesos.TaskRunning {
				t.Fatalf("re-registration after restart: %+v", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restarted agent did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.waitStates("die", "TASK_STARTING", "TASK_RUNNING", "TASK_FAILED")
	// The re-attached task can be killed and its end is reported.
	m.out <- agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: "keep"}}}
	m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	// Not kill(pid, 0): in this in-process test the task stays a zombie of
	// the test binary; /proc says whether it still runs.
	if processStartTime(keep) != 0 {
		t.Fatal("re-attached task survived its kill")
	}
}

func TestHealthChecks(t *testing.T) {
	m := newFakeMaster(t)
	_, stop := startAgent(t, m)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	ev := launch("hc", "sleep 30", nil)
	ev.Launch.Task.HealthCheck = &mesos.HealthCheck{Type: "TCP", TCP: &mesos.TCPCheck{Port: port},
		IntervalSeconds: 0.05, TimeoutSeconds: 1, ConsecutiveFailures: 2}
	m.out <- ev
	sts := m.waitStates("hc", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING")
	if h := sts[2].Healthy; h == nil || !*h {
		t.Fatalf("first check result: %+v", sts[2])
	}
	// The port goes away: unhealthy, then killed after two failures.
	ln.Close()
	sts = m.waitStates("hc", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLED")
	if h := sts[3].Healthy; h == nil || *h {
		t.Fatalf("unhealthy report: %+v", sts[3])
	}
	if sts[4].Reason != mesos.ReasonHealthCheckStatusUpdated {
		t.Fatalf("kill reason: %+v", sts[4])
	}
	// A command check that passes.
	ev = launch("cmdhc", "sleep 30", nil)
	ev.Launch.Task.HealthCheck = &mesos.HealthCheck{Type: "COMMAND", Command: &mesos.CommandInfo{Value: "test -d ."}, IntervalSeconds: 0.05}
	m.out <- ev
	if h := m.waitStates("cmdhc", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING")[2].Healthy; h == nil || !*h {
		t.Fatal("command check not healthy")
	}
}
