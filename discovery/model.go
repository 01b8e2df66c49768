package discovery

import (
	"net"
	"sort"
	"strings"
	"time"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/snapshot"
)

// model is the mutable state discovery assembles from the event stream.
// Only the stream goroutine writes it and only the publisher reads it, both
// under Discovery.mu.
type model struct {
	master     *mesos.MasterInfo
	agents     map[string]mesos.AgentState
	frameworks map[string]mesos.FrameworkInfo
	tasks      map[string]*taskState
	updated    time.Time
}

type taskState struct {
	// kept marks a task carried over from before a resync because its
	// agent is recovering at the new master: served until the agent
	// re-registers (and re-reports it) or is removed.
	kept    bool
	task    mesos.Task
	ips     []string // from the latest status that carried network infos
	healthy *bool
	started time.Time
}

func newModel() *model {
	return &model{agents: map[string]mesos.AgentState{}, frameworks: map[string]mesos.FrameworkInfo{}, tasks: map[string]*taskState{}}
}

// apply folds one event into the model and reports whether anything a
// snapshot shows changed.
func (m *model) apply(ev mesos.OperatorEvent) bool {
	m.updated = time.Now()
	switch ev.Type {
	case mesos.OpEventSubscribed:
		if ev.Subscribed == nil {
			return false
		}
		fresh := newModel()
		fresh.updated = m.updated
		fresh.master = ev.Subscribed.MasterInfo
		st := ev.Subscribed.GetState
		for _, a := range st.GetAgents.Agents {
			fresh.agents[a.AgentInfo.ID.Val()] = a
		}
		for _, f := range st.GetFrameworks.Frameworks {
			fresh.frameworks[f.FrameworkInfo.ID.Val()] = f.FrameworkInfo
		}
		for _, t := range st.GetTasks.Tasks {
			fresh.addTask(t)
		}
		// A new leader (or a restarted master) does not know the tasks of
		// agents that have yet to re-register; keep serving what we knew
		// of them rather than dropping routes and names for seconds.
		recovering := map[string]bool{}
		for _, a := range st.GetAgents.RecoveredAgents {
			recovering[a.ID.Val()] = true
		}
		for id, ts := range m.tasks {
			if _, known := fresh.tasks[id]; !known && recovering[ts.task.AgentID.Value] {
				kept := *ts
				kept.kept = true
				fresh.tasks[id] = &kept
				if a, ok := m.agents[ts.task.AgentID.Value]; ok {
					fresh.agents[ts.task.AgentID.Value] = a
				}
			}
		}
		*m = *fresh
		return true
	case mesos.OpEventTaskAdded:
		if ev.TaskAdded != nil {
			m.addTask(ev.TaskAdded.Task)
			return true
		}
	case mesos.OpEventTaskUpdated:
		if u := ev.TaskUpdated; u != nil {
			ts, ok := m.tasks[u.Status.TaskID.Value]
			if !ok {
				return false
			}
			if u.State.Terminal() {
				delete(m.tasks, u.Status.TaskID.Value)
				return true
			}
			ts.task.State = u.State
			ts.observe(u.Status)
			return true
		}
	case mesos.OpEventAgentAdded:
		if a := ev.AgentAdded; a != nil {
			id := a.Agent.AgentInfo.ID.Val()
			m.agents[id] = a.Agent
			// The agent re-reported its tasks (TASK_ADDED) before this
			// event: what is still only kept is gone.
			m.dropKept(id)
			return true
		}
	case mesos.OpEventAgentRemoved:
		if a := ev.AgentRemoved; a != nil {
			delete(m.agents, a.AgentID.Value)
			m.dropKept(a.AgentID.Value)
			return true
		}
	case mesos.OpEventFrameworkAdded, mesos.OpEventFrameworkUpdated:
		fe := ev.FrameworkAdded
		if fe == nil {
			fe = ev.FrameworkUpdated
		}
		if fe != nil {
			m.frameworks[fe.Framework.FrameworkInfo.ID.Val()] = fe.Framework.FrameworkInfo
			return true
		}
	case mesos.OpEventFrameworkRemoved:
		if fr := ev.FrameworkRemoved; fr != nil {
			delete(m.frameworks, fr.FrameworkInfo.ID.Val())
			return true
		}
	}
	return false
}

// dropKept forgets the tasks kept across a resync for agent id.
func (m *model) dropKept(id string) {
	for tid, ts := range m.tasks {
		if ts.kept && ts.task.AgentID.Value == id {
			delete(m.tasks, tid)
		}
	}
}

func (m *model) addTask(t mesos.Task) {
	if t.State.Terminal() {
		delete(m.tasks, t.TaskID.Value)
		return
	}
	ts := &taskState{task: t}
	for _, st := range t.Statuses {
		ts.observe(st)
	}
	m.tasks[t.TaskID.Value] = ts
}

// observe takes what a status says about addresses, health and start time.
func (ts *taskState) observe(st mesos.TaskStatus) {
	if cs := st.ContainerStatus; cs != nil && len(cs.NetworkInfos) > 0 {
		var ips []string
		for _, ni := range cs.NetworkInfos {
			for _, ip := range ni.IPAddresses {
				if ip.IPAddress != "" {
					ips = append(ips, ip.IPAddress)
				}
			}
		}
		ts.ips = ips
	}
	if st.Healthy != nil {
		h := *st.Healthy
		ts.healthy = &h
	}
	if st.State == mesos.TaskRunning && ts.started.IsZero() {
		ts.started = time.Unix(0, int64(st.Timestamp*1e9))
	}
}

// build renders the model as an immutable snapshot.
func (m *model) build(gen uint64) *snapshot.Snapshot {
	s := &snapshot.Snapshot{
		Generation: gen,
		Updated:    m.updated,
		Agents:     make(map[string]snapshot.Agent, len(m.agents)),
		Frameworks: make(map[string]snapshot.Framework, len(m.frameworks)),
		Tasks:      make([]snapshot.Task, 0, len(m.tasks)),
	}
	if mi := m.master; mi != nil {
		s.Leader = masterOf(mi)
		s.Masters = []snapshot.Master{s.Leader}
	}
	for id, a := range m.agents {
		ip := mesos.IPFromPID(a.PID)
		if ip == "" {
			ip = a.AgentInfo.Hostname
		}
		s.Agents[id] = snapshot.Agent{ID: id, Hostname: a.AgentInfo.Hostname, IP: ip}
	}
	for id, f := range m.frameworks {
		s.Frameworks[id] = snapshot.Framework{ID: id, Name: f.Name}
	}
	for _, ts := range m.tasks {
		s.Tasks = append(s.Tasks, ts.snapshotTask(s))
	}
	sort.Slice(s.Tasks, func(i, j int) bool { return s.Tasks[i].ID < s.Tasks[j].ID })
	return s
}

func masterOf(mi *mesos.MasterInfo) snapshot.Master {
	m := snapshot.Master{ID: mi.ID, Hostname: mi.Hostname, Port: mi.Port}
	if mi.Address != nil {
		m.IP = mi.Address.IP
		if m.Hostname == "" {
			m.Hostname = mi.Address.Hostname
		}
	}
	if m.IP == "" && mi.IP != 0 {
		m.IP = net.IPv4(byte(mi.IP), byte(mi.IP>>8), byte(mi.IP>>16), byte(mi.IP>>24)).String()
	}
	return m
}

func (ts *taskState) snapshotTask(s *snapshot.Snapshot) snapshot.Task {
	t := ts.task
	a := s.Agents[t.AgentID.Value]
	st := snapshot.Task{
		ID: t.TaskID.Value, Name: t.Name, FrameworkID: t.FrameworkID.Value,
		FrameworkName: s.Frameworks[t.FrameworkID.Value].Name,
		AgentID:       t.AgentID.Value, AgentHostname: a.Hostname, AgentIP: a.IP,
		State: t.State, HasHealthCheck: t.HealthCheck != nil, Healthy: ts.healthy,
		IPs: ts.ips, Labels: t.Labels.Map(), StartedAt: ts.started,
	}
	if st.Labels != nil {
		st.AppID = st.Labels[mesos.LabelAppID]
	}
	if d := t.Discovery; d != nil {
		st.DiscoveryName = d.Name
		if d.Ports != nil {
			for _, p := range d.Ports.Ports {
				sp := snapshot.Port{Number: p.Number, Protocol: strings.ToLower(p.Protocol), Name: p.Name}
				if sp.Protocol == "" {
					sp.Protocol = "tcp"
				}
				if v, ok := p.Labels.Get(mesos.LabelServicePort); ok {
					sp.ServicePort = parsePort(v)
				}
				st.Ports = append(st.Ports, sp)
			}
		}
	}
	if st.Ports == nil {
		for _, r := range t.Resources.Ranges("ports") {
			for p := r.Begin; p <= r.End && len(st.Ports) < 64; p++ {
				st.Ports = append(st.Ports, snapshot.Port{Number: uint32(p), Protocol: "tcp"})
			}
		}
	}
	return st
}

func parsePort(s string) uint32 {
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint32(c-'0')
		if n > 65535 {
			return 0
		}
	}
	return n
}
