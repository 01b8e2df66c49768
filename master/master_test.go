package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/api/recordio"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/discovery"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/master"
	"github.com/keelhq/keel/mesosclient"
	"github.com/keelhq/keel/snapshot"
)

// startMaster runs a master on a free loopback port and returns its URL.
func startMaster(t *testing.T) string {
	t.Helper()
	return startMasterWith(t, nil)
}

// startMasterWith is startMaster with a chance to change the config.
func startMasterWith(t *testing.T, tweak func(*master.Config)) string {
	t.Helper()
	leakcheck.Check(t)
	store, err := coord.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := master.Config{Listen: "127.0.0.1:0", Store: store, AllocationInterval: 50 * time.Millisecond,
		HeartbeatInterval: time.Second, OnListen: func(a net.Addr) { addrc <- a }}
	if tweak != nil {
		tweak(&cfg)
	}
	go func() { done <- master.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("master.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("master did not stop within 10s")
		}
		store.Close()
	})
	select {
	case a := <-addrc:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("master exited: %v", err)
	}
	return ""
}

// fakeAgent speaks the agent protocol over real HTTP and records events.
type fakeAgent struct {
	url, id, stream string
	events          chan agent.Event
}

func connectAgent(t *testing.T, ctx context.Context, url string) *fakeAgent {
	t.Helper()
	return connectAgentAs(t, ctx, url, "", nil)
}

// connectAgentAs subscribes as agent id (new when "") reporting tasks.
func connectAgentAs(t *testing.T, ctx context.Context, url, id string, tasks []mesos.Task) *fakeAgent {
	t.Helper()
	res, _ := mesos.ParseResources("cpus:2;mem:1024;disk:1000;ports:[31000-31009]")
	info := mesos.AgentInfo{Hostname: "node1", Port: 5051, Resources: res}
	if id != "" {
		info.ID = mesos.NewID(id)
	}
	body, _ := json.Marshal(agent.Call{Type: agent.CallSubscribe, Subscribe: &agent.Subscribe{
		AgentInfo: info, IP: "127.0.0.7", Tasks: tasks}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+agent.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("agent subscribe: %v %v", err, resp)
	}
	a := &fakeAgent{url: url, stream: resp.Header.Get(agent.StreamIDHeader), events: make(chan agent.Event, 100)}
	go func() {
		defer resp.Body.Close()
		rd := recordio.NewReader(resp.Body, 1<<20)
		for {
			rec, err := rd.Next()
			if err != nil {
				close(a.events)
				return
			}
			var ev agent.Event
			json.Unmarshal(rec, &ev)
			a.events <- ev
		}
	}()
	ev := a.next(t, agent.EventSubscribed)
	a.id = ev.Subscribed.AgentID.Value
	return a
}

func (a *fakeAgent) next(t *testing.T, typ string) agent.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-a.events:
			if !ok {
				t.Fatalf("agent stream closed waiting for %s", typ)
			}
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("agent: no %s event", typ)
		}
	}
}

func (a *fakeAgent) update(t *testing.T, fid, tid string, state mesos.TaskState, uuid []byte) {
	t.Helper()
	body, _ := json.Marshal(agent.Call{Type: agent.CallUpdate, AgentID: mesos.NewID(a.id), Update: &agent.Update{
		FrameworkID: mesos.ID{Value: fid}, Status: mesos.TaskStatus{TaskID: mesos.ID{Value: tid}, State: state, UUID: uuid, Source: mesos.SourceExecutor}}})
	req, _ := http.NewRequest(http.MethodPost, a.url+agent.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agent.StreamIDHeader, a.stream)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("agent update: %v %v", err, resp)
	}
	resp.Body.Close()
}

// scheduler runs a framework subscription and collects its events.
type scheduler struct {
	*mesosclient.Scheduler
	mu     sync.Mutex
	events []mesos.Event
	signal chan struct{}
}

func (s *scheduler) next(t *testing.T, typ string) mesos.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		for i, ev := range s.events {
			if ev.Type == typ {
				s.events = append(s.events[:i:i], s.events[i+1:]...)
				s.mu.Unlock()
				return ev
			}
		}
		s.mu.Unlock()
		select {
		case <-s.signal:
		case <-deadline:
			t.Fatalf("scheduler: no %s event", typ)
		}
	}
}

func subscribe(t *testing.T, ctx context.Context, url string) *scheduler {
	return subscribeInfo(t, ctx, url, mesos.FrameworkInfo{User: "root", Name: "test", FailoverTimeout: 60,
		Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityTaskKillingState}}})
}

func subscribeInfo(t *testing.T, ctx context.Context, url string, info mesos.FrameworkInfo) *scheduler {
	s := &scheduler{Scheduler: mesosclient.NewScheduler(url), signal: make(chan struct{}, 1)}
	go s.Subscribe(ctx, info, func(ev mesos.Event) {
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		select {
		case s.signal <- struct{}{}:
		default:
		}
	})
	return s
}

func waitSnapshot(t *testing.T, d *discovery.Discovery, what string, ok func(*snapshot.Snapshot) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(d.Current()) {
		if time.Now().After(deadline) {
			t.Fatalf("snapshot never showed %s; last: %+v", what, d.Current().Tasks)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTaskLifecycle(t *testing.T) {
	url := startMaster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	disc := discovery.New(discovery.Config{Master: url})
	go disc.Run(ctx)

	ag := connectAgent(t, ctx, url)
	s := subscribe(t, ctx, url)
	fid := s.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value
	offer := s.next(t, mesos.EventOffers).Offers.Offers[0]
	if offer.AgentID.Value != ag.id || offer.Resources.Scalar("cpus") != 2 {
		t.Fatalf("unexpected offer %+v", offer)
	}

	task := mesos.TaskInfo{Name: "web", TaskID: mesos.ID{Value: "web.1"}, AgentID: offer.AgentID,
		Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.5), mesos.ScalarResource("mem", 64), mesos.RangesResource("ports", mesos.Range{Begin: 31003, End: 31003})},
		Command:   &mesos.CommandInfo{Value: "sleep 100"},
		Labels:    &mesos.Labels{Labels: []mesos.Label{{Key: "HAPROXY_0_VHOST", Value: "web.example.com"}}},
		Discovery: &mesos.DiscoveryInfo{Visibility: "FRAMEWORK", Name: "web", Ports: &mesos.Ports{Ports: []mesos.Port{{Number: 31003, Protocol: "tcp",
			Labels: &mesos.Labels{Labels: []mesos.Label{{Key: mesos.LabelServicePort, Value: "10001"}}}}}}}}
	// A second task reusing the same ID is refused with TASK_ERROR.
	dup := task
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{offer.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{task, dup}}}}}}); err != nil {
		t.Fatal(err)
	}
	launch := ag.next(t, agent.EventLaunch)
	if launch.Launch.Task.TaskID.Value != "web.1" || !launch.Launch.FrameworkInfo.HasCapability(mesos.CapabilityTaskKillingState) {
		t.Fatalf("bad launch %+v", launch.Launch)
	}
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskError || !strings.Contains(st.Message, "already exists") {
		t.Fatalf("duplicate task: got %s %q", st.State, st.Message)
	}
	// Accepting the same offer again is refused: the offer is gone.
	s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{offer.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{{Name: "x", TaskID: mesos.ID{Value: "x"}, AgentID: offer.AgentID, Resources: task.Resources, Command: task.Command}}}}}}})
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskDropped || st.Reason != mesos.ReasonInvalidOffers {
		t.Fatalf("stale offer: got %s %s", st.State, st.Reason)
	}

	uuid := []byte("0123456789abcdef")
	ag.update(t, fid, "web.1", mesos.TaskRunning, uuid)
	up := s.next(t, mesos.EventUpdate).Update.Status
	if up.State != mesos.TaskRunning || string(up.UUID) != string(uuid) {
		t.Fatalf("update: %+v", up)
	}
	waitSnapshot(t, disc, "web.1 running", func(s *snapshot.Snapshot) bool {
		return len(s.Tasks) == 1 && s.Tasks[0].State == mesos.TaskRunning && s.Tasks[0].AgentIP == "127.0.0.7" &&
			s.Tasks[0].Ports[0].ServicePort == 10001 && s.Tasks[0].Labels["HAPROXY_0_VHOST"] == "web.example.com"
	})
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAcknowledge, Acknowledge: &mesos.Acknowledge{AgentID: offer.AgentID, TaskID: task.TaskID, UUID: uuid}}); err != nil {
		t.Fatal(err)
	}
	if ack := ag.next(t, agent.EventAcknowledged); string(ack.Acknowledged.UUID) != string(uuid) {
		t.Fatalf("ack relayed with wrong uuid: %q", ack.Acknowledged.UUID)
	}

	// Kill: the agent is asked, reports KILLED, the task leaves the snapshot.
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallKill, Kill: &mesos.Kill{TaskID: task.TaskID}}); err != nil {
		t.Fatal(err)
	}
	ag.next(t, agent.EventKill)
	ag.update(t, fid, "web.1", mesos.TaskKilled, []byte("fedcba9876543210"))
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskKilled {
		t.Fatalf("got %s", st.State)
	}
	waitSnapshot(t, disc, "no tasks", func(s *snapshot.Snapshot) bool { return len(s.Tasks) == 0 })

	// Implicit reconciliation answers for tasks the master knows: none now
	// but an explicit one for an unknown task says TASK_LOST.
	s.Call(ctx, mesos.Call{Type: mesos.CallReconcile, Reconcile: &mesos.Reconcile{Tasks: []mesos.ReconcileTask{{TaskID: mesos.ID{Value: "nope"}}}}})
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskLost || st.TaskID.Value != "nope" {
		t.Fatalf("reconcile unknown: %+v", st)
	}
}

func TestBadInput(t *testing.T) {
	url := startMaster(t)
	post := func(path, body string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Message string }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Message
	}
	cases := []struct {
		name, path, body string
		hdr              map[string]string
		code             int
		msg              string
	}{
		{"malformed json", "/api/v1/scheduler", "{", nil, 400, "parse"},
		{"unknown call", "/api/v1/scheduler", `{"type":"FLY","framework_id":{"value":"f"}}`, nil, 403, "not subscribed"},
		{"missing framework id", "/api/v1/scheduler", `{"type":"DECLINE"}`, nil, 400, "framework_id"},
		{"subscribe without info", "/api/v1/scheduler", `{"type":"SUBSCRIBE"}`, nil, 400, "subscribe"},
		{"subscribe with stream id", "/api/v1/scheduler", `{"type":"SUBSCRIBE"}`, map[string]string{"Mesos-Stream-Id": "x"}, 400, "Mesos-Stream-Id"},
		{"oversized", "/api/v1/scheduler", `{"type":"` + strings.Repeat("x", 5<<20) + `"}`, nil, 413, "exceeds"},
		{"operator unknown", "/api/v1", `{"type":"FLY"}`, nil, 400, "Unsupported"},
		{"agent without ip", agent.Path, `{"type":"SUBSCRIBE","subscribe":{"agent_info":{"hostname":"h"}}}`, nil, 400, "ip"},
		{"agent update unknown", agent.Path, `{"type":"UPDATE","agent_id":{"value":"a"},"update":{"framework_id":{"value":"f"},"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING"}}}`, nil, 403, "not subscribed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, msg := post(c.path, c.body, c.hdr)
			if code != c.code || !strings.Contains(msg, c.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, c.code, c.msg)
			}
		})
	}
	// GET_ROLES answers with the default role.
	resp0, err := http.Post(url+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_ROLES"}`))
	if err != nil {
		t.Fatal(err)
	}
	var roles mesos.OperatorResponse
	json.NewDecoder(resp0.Body).Decode(&roles)
	resp0.Body.Close()
	if roles.GetRoles == nil || roles.GetRoles.Roles == nil {
		t.Fatalf("GET_ROLES: %+v", roles)
	}
	// The master still answers.
	resp, err := http.Get(url + "/master/state")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("state after bad input: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestParseWeights(t *testing.T) {
	w, err := master.ParseWeights("prod=3, dev=1.5")
	if err != nil || w["prod"] != 3 || w["dev"] != 1.5 {
		t.Fatalf("%v %v", w, err)
	}
	for _, bad := range []string{"prod", "prod=0", "=2", "prod=x"} {
		if _, err := master.ParseWeights(bad); err == nil {
			t.Errorf("%q: want error", bad)
		}
	}
}
