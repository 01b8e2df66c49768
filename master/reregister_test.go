package master_test

import (
	"context"
	"testing"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
)

// reportedTask is a task as an agent reports it when it subscribes.
func reportedTask(fid string, ti mesos.TaskInfo, state mesos.TaskState) mesos.Task {
	return mesos.Task{Name: ti.Name, TaskID: ti.TaskID, FrameworkID: mesos.ID{Value: fid}, State: state, Resources: ti.Resources,
		Statuses: []mesos.TaskStatus{{TaskID: ti.TaskID, State: state, Source: mesos.SourceExecutor, Timestamp: 1}}}
}

// taskIDs lists the IDs of tasks.
func taskIDs(tasks []mesos.Task) map[string]mesos.TaskState {
	out := map[string]mesos.TaskState{}
	for _, t := range tasks {
		out[t.TaskID.Value] = t.State
	}
	return out
}

// An agent re-registering with tasks that ended: their resources are not
// used (the next offer is the whole agent but for its live tasks, and no
// framework holds them); an ended task the master takes on is completed at
// once when nothing is left to acknowledge, or kept until the framework
// acknowledges the update the agent has pending for it, which is then
// relayed to the agent; a task the master had live and the agent reports
// ended ends at once.
func TestReregisterTerminalTasks(t *testing.T) {
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
	}
	tasks := func(step string) (live, completed map[string]mesos.TaskState) {
		t.Helper()
		code, resp, msg := operator(t, url, `{"type":"GET_TASKS"}`)
		if code != 200 || resp.GetTasks == nil {
			t.Fatalf("%s: GET_TASKS: %d %s", step, code, msg)
		}
		return taskIDs(resp.GetTasks.Tasks), taskIDs(resp.GetTasks.CompletedTasks)
	}

	s := subscribe(t, ctx, url)
	fid := s.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value
	ag, _ := answerPings(connectAgent(t, ctx, url))
	o1 := s.next(t, mesos.EventOffers).Offers.Offers[0]
	k1 := heldTask("k1", 0.1, 10, 31000, 31000)
	k2 := heldTask("k2", 0.2, 20, 31005, 31005)
	k1.AgentID, k2.AgentID = o1.AgentID, o1.AgentID
	refuse := 0.0
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o1.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{k1, k2}}}},
		Filters:    &mesos.Filters{RefuseSeconds: &refuse}}}); err != nil {
		t.Fatal(err)
	}
	ag.next(t, agent.EventLaunch)
	ag.next(t, agent.EventLaunch)
	// What is left of the agent is offered again before it re-registers.
	if rest := s.next(t, mesos.EventOffers).Offers.Offers[0]; rest.Resources.Scalar("cpus") != 1.7 {
		t.Fatalf("remainder offer: %s", rest.Resources.String())
	}
	ag.update(t, fid, "k1", mesos.TaskRunning, nil)
	ag.update(t, fid, "k2", mesos.TaskRunning, nil)
	check("launched")

	// The agent re-registers (a new stream, the old one is closed):
	// k1 and a task the master never knew (l) run; k2 finished; two tasks
	// the master never knew ended, t1 with nothing pending, t2 with an
	// update the framework has to acknowledge.
	l := heldTask("l", 0.5, 100, 31001, 31002)
	t1 := heldTask("t1", 0.5, 200, 31003, 31003)
	t2 := heldTask("t2", 0.25, 50, 31004, 31004)
	rt2 := reportedTask(fid, t2, mesos.TaskFailed)
	rt2.StatusUpdateState, rt2.StatusUpdateUUID = mesos.TaskFailed, []byte("uuid-t2-failed")
	rt2.Statuses[0].UUID = rt2.StatusUpdateUUID
	ag2, _ := answerPings(connectAgentAs(t, ctx, url, ag.id, []mesos.Task{
		reportedTask(fid, k1, mesos.TaskRunning), reportedTask(fid, k2, mesos.TaskFinished),
		reportedTask(fid, l, mesos.TaskRunning), reportedTask(fid, t1, mesos.TaskFinished), rt2,
	}))
	o2 := s.next(t, mesos.EventOffers).Offers.Offers[0]
	if o2.AgentID.Value != ag.id || o2.Resources.Scalar("cpus") != 1.4 || o2.Resources.Scalar("mem") != 914 ||
		o2.Resources.Scalar("disk") != 1000 || mesos.FormatRanges(o2.Resources.Ranges("ports")) != "[31003-31009]" {
		t.Fatalf("offer after re-registration: %s, want cpus 1.4, mem 914, disk 1000, ports [31003-31009] (all but k1 and l)", o2.Resources.String())
	}
	check("re-registered")
	code, resp, _ := operator(t, url, `{"type":"GET_STATE"}`)
	if code != 200 || resp.GetState == nil || len(resp.GetState.GetAgents.Agents) != 1 || len(resp.GetState.GetFrameworks.Frameworks) != 1 {
		t.Fatalf("GET_STATE: %d %+v", code, resp.GetState)
	}
	if used := resp.GetState.GetAgents.Agents[0].AllocatedResources; used.Scalar("cpus") != 0.6 || used.Scalar("mem") != 110 {
		t.Fatalf("agent's used resources %s, want k1 and l's", used.String())
	}
	if held := resp.GetState.GetFrameworks.Frameworks[0].AllocatedResources; held.Scalar("cpus") != 0.6 || held.Scalar("mem") != 110 {
		t.Fatalf("framework's allocated resources %s, want k1 and l's", held.String())
	}

	// The framework hears each task's state; t2's pending update carries
	// the agent's UUID, k2's end one of the master's.
	var k2uuid []byte
	want := map[string]mesos.TaskState{"k1": mesos.TaskRunning, "l": mesos.TaskRunning, "t1": mesos.TaskFinished, "k2": mesos.TaskFinished}
	t2pending := false
	for len(want) > 0 || !t2pending || k2uuid == nil {
		st := s.next(t, mesos.EventUpdate).Update.Status
		switch {
		case st.TaskID.Value == "t2" && string(st.UUID) == "uuid-t2-failed":
			if st.State != mesos.TaskFailed {
				t.Fatalf("t2's pending update: %s", st.State)
			}
			t2pending = true
		case st.TaskID.Value == "k2" && len(st.UUID) > 0:
			k2uuid = st.UUID
			fallthrough
		default:
			if st.State == want[st.TaskID.Value] {
				delete(want, st.TaskID.Value)
			}
		}
	}
	live, completed := tasks("re-registered")
	if len(live) != 4 || live["k1"] != mesos.TaskRunning || live["l"] != mesos.TaskRunning ||
		live["t2"] != mesos.TaskFailed || live["k2"] != mesos.TaskFinished {
		t.Fatalf("tasks after re-registration: %v, want k1 and l running, t2 and k2 awaiting acknowledgement", live)
	}
	if len(completed) != 1 || completed["t1"] != mesos.TaskFinished {
		t.Fatalf("completed tasks after re-registration: %v, want t1", completed)
	}

	// The agent retries t2's update: the framework hears it again.
	ag2.update(t, fid, "t2", mesos.TaskFailed, []byte("uuid-t2-failed"))
	for {
		if st := s.next(t, mesos.EventUpdate).Update.Status; st.TaskID.Value == "t2" && string(st.UUID) == "uuid-t2-failed" {
			break
		}
	}
	// Acknowledgements complete both; t2's goes on to the agent.
	for _, ack := range []mesos.Acknowledge{
		{AgentID: o2.AgentID, TaskID: mesos.ID{Value: "k2"}, UUID: k2uuid},
		{AgentID: o2.AgentID, TaskID: mesos.ID{Value: "t2"}, UUID: []byte("uuid-t2-failed")},
	} {
		if err := s.Call(ctx, mesos.Call{Type: mesos.CallAcknowledge, Acknowledge: &ack}); err != nil {
			t.Fatal(err)
		}
	}
	if a := ag2.next(t, agent.EventAcknowledged).Acknowledged; a.TaskID.Value != "t2" || string(a.UUID) != "uuid-t2-failed" {
		t.Fatalf("acknowledgement relayed to the agent: %+v", a)
	}
	live, completed = tasks("acknowledged")
	if len(live) != 2 || live["k1"] != mesos.TaskRunning || live["l"] != mesos.TaskRunning {
		t.Fatalf("tasks after the acknowledgements: %v, want k1 and l", live)
	}
	if len(completed) != 3 || completed["t1"] != mesos.TaskFinished || completed["t2"] != mesos.TaskFailed || completed["k2"] != mesos.TaskFinished {
		t.Fatalf("completed tasks after the acknowledgements: %v, want t1, t2 and k2", completed)
	}
	check("acknowledged")

	// Once the live tasks end, the agent is free again.
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallDecline, Decline: &mesos.Decline{OfferIDs: []mesos.ID{o2.ID},
		Filters: &mesos.Filters{RefuseSeconds: &refuse}}}); err != nil {
		t.Fatal(err)
	}
	ag2.update(t, fid, "k1", mesos.TaskFinished, nil)
	ag2.update(t, fid, "l", mesos.TaskFinished, nil)
	for {
		o := s.next(t, mesos.EventOffers).Offers.Offers[0]
		if o.Resources.Scalar("cpus") == 2 && o.Resources.Scalar("mem") == 1024 && mesos.FormatRanges(o.Resources.Ranges("ports")) == "[31000-31009]" {
			break
		}
		// An offer made before both ended: decline it, the next one comes.
		if err := s.Call(ctx, mesos.Call{Type: mesos.CallDecline, Decline: &mesos.Decline{OfferIDs: []mesos.ID{o.ID},
			Filters: &mesos.Filters{RefuseSeconds: &refuse}}}); err != nil {
			t.Fatal(err)
		}
	}
	check("all ended")
}
