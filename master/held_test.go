package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/master"
)

// startTerm runs a master term the test can look into, served over real
// HTTP on loopback, with pings every 100ms and an agent taken for
// partitioned after 3 missed ones.
func startTerm(t *testing.T) (*master.Master, string) {
	t.Helper()
	leakcheck.Check(t)
	store, err := coord.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m, done, err := master.StartTerm(ctx, master.Config{Store: store, AllocationInterval: 50 * time.Millisecond,
		HeartbeatInterval: time.Second, AgentPingTimeout: 100 * time.Millisecond, MaxAgentPingTimeouts: 3})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("term did not stop within 10s")
		}
		srv.Close()
		store.Close()
	})
	return m, srv.URL
}

// answerPings makes a answer its PINGs (passing its other events on)
// until the returned function is called; then it goes silent.
func answerPings(a *fakeAgent) (*fakeAgent, func()) {
	var silent atomic.Bool
	out := *a
	in := a.events
	out.events = make(chan agent.Event, 100)
	go func() {
		defer close(out.events)
		for ev := range in {
			if ev.Type != agent.EventPing {
				out.events <- ev
				continue
			}
			if silent.Load() {
				continue
			}
			body, _ := json.Marshal(agent.Call{Type: agent.CallPong, AgentID: mesos.NewID(a.id)})
			req, _ := http.NewRequest(http.MethodPost, a.url+agent.Path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(agent.StreamIDHeader, a.stream)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}()
	return &out, func() { silent.Store(true) }
}

// waitStatus waits for the framework to hear state for every task of
// tids, in any order, passing over its other updates.
func waitStatus(t *testing.T, s *scheduler, state mesos.TaskState, tids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range tids {
		want[id] = true
	}
	for len(want) > 0 {
		st := s.next(t, mesos.EventUpdate).Update.Status
		if st.State == state {
			delete(want, st.TaskID.Value)
		}
	}
}

// offersOn collects s's offers until it holds one of every agent.
func offersOn(t *testing.T, s *scheduler, agents ...string) map[string]mesos.Offer {
	t.Helper()
	out := map[string]mesos.Offer{}
	for len(out) < len(agents) {
		for _, o := range s.next(t, mesos.EventOffers).Offers.Offers {
			out[o.AgentID.Value] = o
		}
	}
	for _, id := range agents {
		if _, ok := out[id]; !ok {
			t.Fatalf("no offer of agent %s: %v", id, out)
		}
	}
	return out
}

func heldTask(name string, cpus, mem float64, ports ...uint64) mesos.TaskInfo {
	rs := mesos.Resources{mesos.ScalarResource("cpus", cpus), mesos.ScalarResource("mem", mem)}
	if len(ports) == 2 {
		rs = append(rs, mesos.RangesResource("ports", mesos.Range{Begin: ports[0], End: ports[1]}))
	}
	return mesos.TaskInfo{Name: name, TaskID: mesos.ID{Value: name}, Resources: rs, Command: &mesos.CommandInfo{Value: "sleep 100"}}
}

// launchOn launches tasks on offer o; the framework wants no more offers
// of that agent.
func launchOn(t *testing.T, ctx context.Context, s *scheduler, o mesos.Offer, tasks ...mesos.TaskInfo) {
	t.Helper()
	for i := range tasks {
		tasks[i].AgentID = o.AgentID
	}
	refuse := 3600.0
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: tasks}}},
		Filters:    &mesos.Filters{RefuseSeconds: &refuse}}}); err != nil {
		t.Fatal(err)
	}
}

// The running totals of what frameworks' tasks hold, which allocation
// cycles read instead of walking every task, equal a full recompute from
// the master's tasks (and, with the offers, what a cycle used to add up)
// after every kind of change a task goes through; so do GET_ROLES and the
// task counts by state, which read running totals too.
func TestHeldTotals(t *testing.T) {
	m, url := startTerm(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	check := func(step string) {
		t.Helper()
		if err := m.CheckHeld(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if err := m.CheckAvailable(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if err := m.CheckRolesAndCounts(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// held is the cpus, mem and ports framework fid's tasks hold under role.
	held := func(step, fid, role string, cpus, mem float64, ports string) {
		t.Helper()
		rs := m.Held(fid)[role]
		if rs.Scalar("cpus") != cpus || rs.Scalar("mem") != mem || mesos.FormatRanges(rs.Ranges("ports")) != ports {
			t.Fatalf("%s: framework %s role %q holds %q, want cpus %g, mem %g, ports %s", step, fid, role, rs.String(), cpus, mem, ports)
		}
	}
	check("empty")

	ag1, _ := answerPings(connectAgent(t, ctx, url))
	ag2, silence2 := answerPings(connectAgent(t, ctx, url))
	// A partition-aware framework of the default role.
	sa := subscribePartitionAware(t, ctx, url)
	fa := sa.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value
	offers := offersOn(t, sa, ag1.id, ag2.id)
	check("offers out")

	// Launches: five tasks on agent 1, two on agent 2, whose ports overlap
	// agent 1's (the totals add them up as a set, as Resources do).
	launchOn(t, ctx, sa, offers[ag1.id], heldTask("a1", 0.5, 64, 31000, 31001), heldTask("a2", 0.25, 32, 31002, 31002),
		heldTask("a3", 0.1, 16), heldTask("a4", 0.1, 16, 31003, 31003), heldTask("a5", 0.2, 8))
	launchOn(t, ctx, sa, offers[ag2.id], heldTask("b1", 0.3, 128, 31000, 31001), heldTask("b2", 0.05, 1))
	for range 5 {
		ag1.next(t, agent.EventLaunch)
	}
	check("launched on agent 1 and 2")
	held("launched", fa, "*", 1.5, 265, "[31000-31003]")

	// Status updates: running, then each way of ending. Updates with a
	// UUID keep the ended task in the master until acknowledged.
	for _, id := range []string{"a1", "a2", "a3", "a4", "a5"} {
		ag1.update(t, fa, id, mesos.TaskRunning, nil)
	}
	check("running")
	held("running", fa, "*", 1.5, 265, "[31000-31003]")
	ag1.update(t, fa, "a2", mesos.TaskFinished, []byte("uuid-a2-finished"))
	check("finished")
	held("finished", fa, "*", 1.25, 233, "[31000-31001, 31003-31003]")
	ag1.update(t, fa, "a3", mesos.TaskFailed, nil)
	check("failed")
	// An update for a task that already ended changes nothing.
	ag1.update(t, fa, "a2", mesos.TaskRunning, []byte("uuid-a2-late"))
	check("update after the end")
	if err := sa.Call(ctx, mesos.Call{Type: mesos.CallKill, Kill: &mesos.Kill{TaskID: mesos.ID{Value: "a4"}}}); err != nil {
		t.Fatal(err)
	}
	ag1.next(t, agent.EventKill)
	check("kill asked")
	ag1.update(t, fa, "a4", mesos.TaskKilled, nil)
	check("killed")
	ag1.update(t, fa, "a5", mesos.TaskLost, nil)
	check("lost")
	held("ended", fa, "*", 0.85, 193, "[31000-31001]")
	if err := sa.Call(ctx, mesos.Call{Type: mesos.CallAcknowledge, Acknowledge: &mesos.Acknowledge{AgentID: mesos.ID{Value: ag1.id},
		TaskID: mesos.ID{Value: "a2"}, UUID: []byte("uuid-a2-finished")}}); err != nil {
		t.Fatal(err)
	}
	check("acknowledged")

	// Agent 2 goes silent and is removed: its tasks are unreachable, still
	// held (they may come back). Then it re-registers, reporting b1
	// running and a task the master never knew; b2, not reported, is lost.
	silence2()
	waitStatus(t, sa, mesos.TaskUnreachable, "b1", "b2")
	check("agent 2 removed")
	held("unreachable", fa, "*", 0.85, 193, "[31000-31001]")
	for range ag2.events {
	}
	ag2, silence2 = answerPings(connectAgentAs(t, ctx, url, ag2.id, []mesos.Task{
		{Name: "b1", TaskID: mesos.ID{Value: "b1"}, FrameworkID: mesos.ID{Value: fa}, State: mesos.TaskRunning,
			Resources: heldTask("b1", 0.3, 128, 31000, 31001).Resources},
		{Name: "c1", TaskID: mesos.ID{Value: "c1"}, FrameworkID: mesos.ID{Value: fa}, State: mesos.TaskRunning,
			Resources: heldTask("c1", 0.4, 100, 31005, 31006).Resources},
		{Name: "c2", TaskID: mesos.ID{Value: "c2"}, FrameworkID: mesos.ID{Value: fa}, State: mesos.TaskFinished,
			Resources: heldTask("c2", 1, 1).Resources},
	}))
	waitStatus(t, sa, mesos.TaskRunning, "b1", "c1")
	waitStatus(t, sa, mesos.TaskLost, "b2")
	check("agent 2 re-registered")
	held("re-registered", fa, "*", 1.2, 292, "[31000-31001, 31005-31006]")
	if err := sa.Call(ctx, mesos.Call{Type: mesos.CallSuppress}); err != nil {
		t.Fatal(err)
	}

	// A second framework, of role "eng" and not partition-aware, on both
	// agents; then agent 2 is removed again: that framework's task there
	// is lost, the first one's are unreachable.
	sb := subscribeInfo(t, ctx, url, mesos.FrameworkInfo{User: "root", Name: "eng", Role: "eng", FailoverTimeout: 60})
	fb := sb.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value
	offers = offersOn(t, sb, ag1.id, ag2.id)
	launchOn(t, ctx, sb, offers[ag1.id], heldTask("e1", 0.5, 10, 31004, 31004))
	launchOn(t, ctx, sb, offers[ag2.id], heldTask("e2", 0.2, 20, 31007, 31007))
	check("second framework launched")
	held("second framework", fb, "eng", 0.7, 30, "[31004-31004, 31007-31007]")
	ag1.update(t, fb, "e1", mesos.TaskRunning, nil)
	ag2.update(t, fb, "e2", mesos.TaskRunning, nil)
	silence2()
	waitStatus(t, sb, mesos.TaskLost, "e2")
	waitStatus(t, sa, mesos.TaskUnreachable, "b1", "c1")
	check("agent 2 removed again")
	held("agent 2 removed again", fb, "eng", 0.5, 10, "[31004-31004]")
	held("agent 2 removed again", fa, "*", 1.2, 292, "[31000-31001, 31005-31006]")
	for range ag2.events {
	}

	// Teardown of the first framework: its tasks on the gone agent are
	// killed at once; the one on agent 1 when agent 1 reports it.
	if err := sa.Call(ctx, mesos.Call{Type: mesos.CallTeardown}); err != nil {
		t.Fatal(err)
	}
	check("teardown")
	held("teardown", fa, "*", 0.5, 64, "[31000-31001]")
	// (Tasks that ended but wait for an acknowledgement get a kill too.)
	for ag1.next(t, agent.EventKill).Kill.TaskID.Value != "a1" {
	}
	ag1.update(t, fa, "a1", mesos.TaskKilled, []byte("uuid-a1-killed"))
	check("torn down")
	if h := m.Held(fa); h != nil {
		t.Fatalf("torn-down framework still holds %v", h)
	}

	// Agent 1 re-registers (a new stream) reporting e1 and a task of the
	// second framework the master never knew.
	ag1b, _ := answerPings(connectAgentAs(t, ctx, url, ag1.id, []mesos.Task{
		{Name: "e1", TaskID: mesos.ID{Value: "e1"}, FrameworkID: mesos.ID{Value: fb}, State: mesos.TaskRunning,
			Resources: heldTask("e1", 0.5, 10, 31004, 31004).Resources},
		{Name: "e3", TaskID: mesos.ID{Value: "e3"}, FrameworkID: mesos.ID{Value: fb}, State: mesos.TaskStarting,
			Resources: heldTask("e3", 0.125, 5, 31008, 31009).Resources},
	}))
	waitStatus(t, sb, mesos.TaskStarting, "e3")
	check("agent 1 re-registered")
	held("agent 1 re-registered", fb, "eng", 0.625, 15, "[31004-31004, 31008-31009]")
	ag1b.update(t, fb, "e3", mesos.TaskFinished, nil)
	ag1b.update(t, fb, "e1", mesos.TaskFinished, nil)
	check("all ended")
	if h := m.Held(fb); h != nil {
		t.Fatalf("framework with no live task still holds %v", h)
	}
}
