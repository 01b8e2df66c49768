package discovery

import (
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

func TestModel(t *testing.T) {
	yes := true
	task := mesos.Task{Name: "web.prod", TaskID: mesos.ID{Value: "prod_web.1"}, FrameworkID: mesos.ID{Value: "fw"},
		AgentID: mesos.ID{Value: "ag"}, State: mesos.TaskStaging,
		Labels:      &mesos.Labels{Labels: []mesos.Label{{Key: mesos.LabelAppID, Value: "/prod/web"}, {Key: "HAPROXY_0_VHOST", Value: "w.example.com"}}},
		HealthCheck: &mesos.HealthCheck{Type: "HTTP"},
		Discovery: &mesos.DiscoveryInfo{Ports: &mesos.Ports{Ports: []mesos.Port{
			{Number: 31001, Protocol: "TCP", Labels: &mesos.Labels{Labels: []mesos.Label{{Key: mesos.LabelServicePort, Value: "10001"}}}},
			{Number: 31002, Protocol: "udp"}}}}}
	m := newModel()
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &mesos.OpSubscribed{
		MasterInfo: &mesos.MasterInfo{ID: "m", IP: mesos.IPv4ToUint32([]byte{10, 0, 0, 1}), Port: 5050, Hostname: "n1"},
		GetState: mesos.GetState{
			GetAgents:     mesos.GetAgents{Agents: []mesos.AgentState{{AgentInfo: mesos.AgentInfo{ID: mesos.NewID("ag"), Hostname: "n2"}, PID: mesos.AgentPID("10.0.0.2", 5051)}}},
			GetFrameworks: mesos.GetFrameworks{Frameworks: []mesos.FrameworkState{{FrameworkInfo: mesos.FrameworkInfo{ID: mesos.NewID("fw"), Name: "marathon"}}}},
			GetTasks:      mesos.GetTasks{Tasks: []mesos.Task{task}},
		}}})
	s := m.build(1)
	if s.Leader.IP != "10.0.0.1" || s.Leader.Port != 5050 {
		t.Fatalf("leader: %+v", s.Leader)
	}
	if len(s.Tasks) != 1 {
		t.Fatalf("tasks: %+v", s.Tasks)
	}
	got := s.Tasks[0]
	if got.AgentIP != "10.0.0.2" || got.AgentHostname != "n2" || got.FrameworkName != "marathon" || got.AppID != "/prod/web" ||
		got.Ports[0].ServicePort != 10001 || got.Ports[0].Protocol != "tcp" || got.Ports[1].Protocol != "udp" || !got.HasHealthCheck {
		t.Fatalf("task: %+v", got)
	}
	if got.Routable(true) {
		t.Fatal("staging task is routable")
	}

	// RUNNING with a container IP and a healthy check: routable.
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventTaskUpdated, TaskUpdated: &mesos.TaskUpdated{State: mesos.TaskRunning,
		Status: mesos.TaskStatus{TaskID: task.TaskID, State: mesos.TaskRunning, Healthy: &yes, Timestamp: 1000,
			ContainerStatus: &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{IPAddress: "172.17.0.5"}}}}}}}})
	s2 := m.build(2)
	if got := s2.Tasks[0]; !got.Routable(true) || len(got.IPs) != 1 || got.IPs[0] != "172.17.0.5" || got.StartedAt.Unix() != 1000 {
		t.Fatalf("running: %+v", got)
	}
	// The earlier snapshot is untouched.
	if s.Tasks[0].State != mesos.TaskStaging || s.Generation != 1 {
		t.Fatal("published snapshot was mutated")
	}
	// KILLING leaves the routes at once; a terminal state removes the task.
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventTaskUpdated, TaskUpdated: &mesos.TaskUpdated{State: mesos.TaskKilling,
		Status: mesos.TaskStatus{TaskID: task.TaskID, State: mesos.TaskKilling}}})
	if m.build(3).Tasks[0].Routable(false) {
		t.Fatal("killing task routable")
	}
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventTaskUpdated, TaskUpdated: &mesos.TaskUpdated{State: mesos.TaskKilled,
		Status: mesos.TaskStatus{TaskID: task.TaskID, State: mesos.TaskKilled}}})
	if n := len(m.build(4).Tasks); n != 0 {
		t.Fatalf("killed task still there: %d", n)
	}
	// Updates for unknown tasks change nothing.
	if m.apply(mesos.OperatorEvent{Type: mesos.OpEventTaskUpdated, TaskUpdated: &mesos.TaskUpdated{State: mesos.TaskRunning,
		Status: mesos.TaskStatus{TaskID: mesos.ID{Value: "ghost"}}}}) {
		t.Fatal("unknown task update reported a change")
	}
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventAgentRemoved, AgentRemoved: &mesos.AgentRemoved{AgentID: mesos.ID{Value: "ag"}}})
	if len(m.build(5).Agents) != 0 {
		t.Fatal("agent not removed")
	}
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]uint32{"10001": 10001, "": 0, "x1": 0, "70000": 0, "65535": 65535} {
		if got := parsePort(in); got != want {
			t.Errorf("parsePort(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	yes := true
	path := t.TempDir() + "/state.json"
	d := New(Config{Master: "http://127.0.0.1:1"})
	d.handle(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &mesos.OpSubscribed{
		MasterInfo: &mesos.MasterInfo{ID: "m", Address: &mesos.Address{IP: "10.0.0.1"}, Port: 5050},
		GetState: mesos.GetState{
			GetAgents: mesos.GetAgents{Agents: []mesos.AgentState{{AgentInfo: mesos.AgentInfo{ID: mesos.NewID("ag"), Hostname: "n2"}, PID: mesos.AgentPID("10.0.0.2", 5051)}}},
			GetTasks: mesos.GetTasks{Tasks: []mesos.Task{{Name: "web", TaskID: mesos.ID{Value: "t1"}, AgentID: mesos.ID{Value: "ag"},
				State: mesos.TaskRunning, Statuses: []mesos.TaskStatus{{State: mesos.TaskRunning, Timestamp: 50, Healthy: &yes,
					ContainerStatus: &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{IPAddress: "172.17.0.9"}}}}}}}}}},
		}}})
	if err := d.save(path); err != nil {
		t.Fatal(err)
	}
	d2 := New(Config{Master: "http://127.0.0.1:1"})
	if ok, err := d2.load(path); !ok || err != nil {
		t.Fatalf("load: %v %v", ok, err)
	}
	d.mu.Lock()
	want := d.model.build(1)
	d.mu.Unlock()
	got := d2.model.build(1)
	if len(got.Tasks) != 1 || got.Tasks[0].IPs[0] != "172.17.0.9" || *got.Tasks[0].Healthy != true || got.Tasks[0].AgentIP != "10.0.0.2" ||
		got.Tasks[0].StartedAt.Unix() != 50 || got.Leader.IP != want.Leader.IP {
		t.Fatalf("loaded %+v, want %+v", got.Tasks, want.Tasks)
	}
	if ok, err := New(Config{}).load(t.TempDir() + "/missing"); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
}

// A resync with a new leader that is still waiting for an agent keeps
// that agent's tasks until the agent re-registers (then only what it
// re-reports stays) or is removed.
func TestModelKeepsTasksOfRecoveringAgents(t *testing.T) {
	running := func(id, agent string) mesos.Task {
		return mesos.Task{Name: "web", TaskID: mesos.ID{Value: id}, FrameworkID: mesos.ID{Value: "fw"}, AgentID: mesos.ID{Value: agent}, State: mesos.TaskRunning}
	}
	agents := mesos.GetAgents{Agents: []mesos.AgentState{
		{AgentInfo: mesos.AgentInfo{ID: mesos.NewID("a1"), Hostname: "n1"}, PID: mesos.AgentPID("10.0.0.1", 5051)},
		{AgentInfo: mesos.AgentInfo{ID: mesos.NewID("a2"), Hostname: "n2"}, PID: mesos.AgentPID("10.0.0.2", 5051)}}}
	m := newModel()
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &mesos.OpSubscribed{GetState: mesos.GetState{
		GetAgents: agents, GetTasks: mesos.GetTasks{Tasks: []mesos.Task{running("t1", "a1"), running("t2", "a1"), running("t3", "a2")}}}}})
	ids := func() map[string]bool {
		out := map[string]bool{}
		for _, t := range m.build(1).Tasks {
			out[t.ID] = true
		}
		return out
	}
	// Failover: the new leader knows a1 and a2 only from its registry.
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &mesos.OpSubscribed{GetState: mesos.GetState{
		GetAgents: mesos.GetAgents{RecoveredAgents: []mesos.AgentInfo{agents.Agents[0].AgentInfo, agents.Agents[1].AgentInfo}}}}})
	if got := ids(); len(got) != 3 {
		t.Fatalf("after failover: %v, want t1 t2 t3 kept", got)
	}
	if ip := m.build(2).Tasks[0].AgentIP; ip != "10.0.0.1" {
		t.Fatalf("kept task lost its agent IP: %q", ip)
	}
	// a1 comes back with t1 only: t2 is gone, t3 still kept.
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventTaskAdded, TaskAdded: &mesos.TaskAdded{Task: running("t1", "a1")}})
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventAgentAdded, AgentAdded: &mesos.AgentAdded{Agent: agents.Agents[0]}})
	if got := ids(); !got["t1"] || got["t2"] || !got["t3"] {
		t.Fatalf("after a1 returned: %v, want t1 t3", got)
	}
	// a2 never comes back.
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventAgentRemoved, AgentRemoved: &mesos.AgentRemoved{AgentID: mesos.ID{Value: "a2"}}})
	if got := ids(); !got["t1"] || got["t3"] {
		t.Fatalf("after a2 removed: %v, want t1", got)
	}
	// A resync that does not list an agent as recovering drops its tasks.
	m.apply(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &mesos.OpSubscribed{GetState: mesos.GetState{}}})
	if got := ids(); len(got) != 0 {
		t.Fatalf("plain resync: %v, want none", got)
	}
}
