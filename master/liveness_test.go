package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/master"
)

// pong answers one PING the way keel agent does.
func (a *fakeAgent) pong(t *testing.T) int {
	t.Helper()
	body, _ := json.Marshal(agent.Call{Type: agent.CallPong, AgentID: mesos.NewID(a.id)})
	req, _ := http.NewRequest(http.MethodPost, a.url+agent.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(agent.StreamIDHeader, a.stream)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// An agent that answers its pings stays; one that stops answering is
// taken for partitioned after MaxAgentPingTimeouts, and a partition-aware
// framework hears TASK_UNREACHABLE for its task there.
func TestAgentPingTimeout(t *testing.T) {
	url := startMasterWith(t, func(c *master.Config) {
		c.AgentPingTimeout, c.MaxAgentPingTimeouts = 100*time.Millisecond, 3
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ag := connectAgent(t, ctx, url)

	// Answer pings for ~8 timeouts: the agent must stay connected.
	for i := 0; i < 8; i++ {
		ag.next(t, agent.EventPing)
		if code := ag.pong(t); code != http.StatusAccepted {
			t.Fatalf("pong %d: status %d", i, code)
		}
	}

	s := subscribePartitionAware(t, ctx, url)
	fid := s.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value
	offer := s.next(t, mesos.EventOffers).Offers.Offers[0]
	task := mesos.TaskInfo{Name: "web", TaskID: mesos.ID{Value: "web.1"}, AgentID: offer.AgentID,
		Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.5), mesos.ScalarResource("mem", 64)},
		Command:   &mesos.CommandInfo{Value: "sleep 100"}}
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{offer.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{task}}}}}}); err != nil {
		t.Fatal(err)
	}
	ag.next(t, agent.EventLaunch)
	ag.update(t, fid, "web.1", mesos.TaskRunning, []byte("0123456789abcdef"))
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskRunning {
		t.Fatalf("got %s", st.State)
	}

	// Now the agent goes silent (its stream stays open).
	start := time.Now()
	st := s.next(t, mesos.EventUpdate).Update.Status
	if st.State != mesos.TaskUnreachable || st.TaskID.Value != "web.1" || st.Reason != mesos.ReasonAgentDisconnected {
		t.Fatalf("want TASK_UNREACHABLE of web.1, got %s %s %s", st.TaskID.Value, st.State, st.Reason)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("partition noticed after %v, want about 3 x 100ms", d)
	}
	// Its stream was closed and its pongs are refused.
	for ev := range ag.events {
		_ = ev
	}
	if code := ag.pong(t); code != http.StatusForbidden {
		t.Fatalf("pong after partition: status %d, want 403", code)
	}
	// The agent comes back with the task still running: the framework
	// hears TASK_RUNNING again.
	back := connectAgentAs(t, ctx, url, ag.id, []mesos.Task{{Name: "web", TaskID: task.TaskID, FrameworkID: mesos.ID{Value: fid},
		State: mesos.TaskRunning, Resources: task.Resources}})
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskRunning || st.TaskID.Value != "web.1" {
		t.Fatalf("after the agent returned: %s %s, want TASK_RUNNING of web.1", st.TaskID.Value, st.State)
	}
	_ = back
}

func subscribePartitionAware(t *testing.T, ctx context.Context, url string) *scheduler {
	t.Helper()
	return subscribeInfo(t, ctx, url, mesos.FrameworkInfo{User: "root", Name: "pa", FailoverTimeout: 60,
		Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityPartitionAware}}})
}

// An offer the framework neither accepts nor declines is rescinded after
// OfferTimeout and its resources are offered again.
func TestOfferTimeout(t *testing.T) {
	url := startMasterWith(t, func(c *master.Config) { c.OfferTimeout = 200 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connectAgent(t, ctx, url)
	s := subscribe(t, ctx, url)
	s.next(t, mesos.EventSubscribed)
	first := s.next(t, mesos.EventOffers).Offers.Offers[0]
	start := time.Now()
	resc := s.next(t, mesos.EventRescind).Rescind
	if resc.OfferID != first.ID {
		t.Fatalf("rescinded %s, want %s", resc.OfferID.Value, first.ID.Value)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("rescinded after %v, before the 200ms timeout", d)
	}
	again := s.next(t, mesos.EventOffers).Offers.Offers[0]
	if again.ID == first.ID || again.Resources.Scalar("cpus") != first.Resources.Scalar("cpus") {
		t.Fatalf("re-offer %+v after %+v", again, first)
	}
	// Accepting the rescinded offer is refused.
	s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{first.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{{Name: "x", TaskID: mesos.ID{Value: "x"},
			AgentID: first.AgentID, Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.1)}, Command: &mesos.CommandInfo{Value: "true"}}}}}}}})
	if st := s.next(t, mesos.EventUpdate).Update.Status; st.State != mesos.TaskDropped {
		t.Fatalf("accept of a rescinded offer: %s", st.State)
	}
}

// Role names follow Mesos' rules, and --roles limits which may be used.
func TestFrameworkRoles(t *testing.T) {
	url := startMasterWith(t, func(c *master.Config) { c.Roles = []string{"prod", "eng/web"} })
	cases := []struct {
		roles string
		code  int
		msg   string
	}{
		{`"roles":["dev"]`, 403, "--roles"},
		{`"roles":["a/../b"]`, 400, "not allowed"},
		{`"role":"-x"`, 400, "cannot start"},
		{`"roles":["pr od"]`, 400, "whitespace"},
		{`"roles":["prod","eng/web"],"capabilities":[{"type":"MULTI_ROLE"}]`, 200, ""},
		{`"role":"*"`, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.roles, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			body := `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n",` + c.roles + `}}}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/scheduler", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Message string }
			if resp.StatusCode != 200 {
				json.NewDecoder(resp.Body).Decode(&e)
			}
			if resp.StatusCode != c.code || !strings.Contains(e.Message, c.msg) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, e.Message, c.code, c.msg)
			}
		})
	}
	if err := master.Run(context.Background(), master.Config{Listen: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "Store") {
		t.Fatalf("config without store: %v", err)
	}
	if err := allocator.ValidRole("a//b"); err == nil {
		t.Fatal("a//b accepted")
	}
}

// GET_METRICS answers Mesos' metric names with values.
func TestGetMetrics(t *testing.T) {
	url := startMaster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connectAgent(t, ctx, url)
	resp, err := http.Post(url+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_METRICS"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r mesos.OperatorResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.GetMetrics == nil {
		t.Fatalf("GET_METRICS: %v %+v", err, r)
	}
	got := map[string]float64{}
	for _, m := range r.GetMetrics.Metrics {
		got[m.Name] = m.Value
	}
	if got["master/elected"] != 1 || got["master/slaves_active"] != 1 {
		t.Fatalf("metrics: %v", got)
	}
}
