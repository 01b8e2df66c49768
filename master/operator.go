package master

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/keelhq/keel/api/mesos"
)

// handleOperator serves POST /api/v1.
func (m *Master) handleOperator(w http.ResponseWriter, r *http.Request) {
	var call mesos.OperatorCall
	if !decodeCall(w, r, &call) {
		return
	}
	resp := mesos.OperatorResponse{Type: call.Type}
	switch call.Type {
	case mesos.OpSubscribe:
		m.subscribeOperator(w, r)
		return
	case mesos.OpGetHealth:
		resp.GetHealth = &mesos.GetHealth{Healthy: true}
	case mesos.OpGetVersion:
		resp.GetVersion = &mesos.GetVersion{VersionInfo: mesos.VersionInfo{Version: m.cfg.Version}}
	case mesos.OpGetMaster:
		resp.GetMaster = &mesos.GetMaster{MasterInfo: m.info}
	case mesos.OpGetMetrics:
		resp.GetMetrics = m.getMetrics()
	case mesos.OpGetQuota:
		m.mu.Lock()
		resp.GetQuota = m.getQuota()
		m.mu.Unlock()
	case mesos.OpUpdateQuota:
		if status, msg := m.updateQuota(r.Context(), call.UpdateQuota); status != http.StatusOK {
			httpError(w, status, msg)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	case mesos.OpGetRoles:
		m.mu.Lock()
		resp.GetRoles = m.getRoles()
		m.mu.Unlock()
	case mesos.OpGetState, mesos.OpGetAgents, mesos.OpGetFrameworks, mesos.OpGetTasks:
		m.mu.Lock()
		st := m.getState()
		m.mu.Unlock()
		switch call.Type {
		case mesos.OpGetState:
			resp.GetState = &st
		case mesos.OpGetAgents:
			resp.GetAgents = &st.GetAgents
		case mesos.OpGetFrameworks:
			resp.GetFrameworks = &st.GetFrameworks
		case mesos.OpGetTasks:
			resp.GetTasks = &st.GetTasks
		}
	default:
		httpError(w, http.StatusBadRequest, "Unsupported call type '"+call.Type+"'")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// subscribeOperator streams SUBSCRIBED with the full state, then every
// change as it happens.
func (m *Master) subscribeOperator(w http.ResponseWriter, r *http.Request) {
	c := newConn(newUUID())
	m.mu.Lock()
	st := m.getState()
	c.send(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &mesos.OpSubscribed{
		GetState: st, HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds(), MasterInfo: &m.info}})
	m.opSubs[c] = struct{}{}
	m.mu.Unlock()
	m.metrics.subscriptions.WithLabelValues("operator").Inc()
	defer func() {
		m.mu.Lock()
		delete(m.opSubs, c)
		m.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	c.serve(r.Context(), w, mesos.OperatorEvent{Type: mesos.OpEventHeartbeat}, m.cfg.HeartbeatInterval)
}

// opBroadcast sends ev to every operator subscriber. Caller holds mu, which
// keeps events in the order the state changed.
func (m *Master) opBroadcast(ev mesos.OperatorEvent) {
	if len(m.opSubs) == 0 {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	for c := range m.opSubs {
		if !c.sendRaw(b) {
			delete(m.opSubs, c)
		}
	}
}

// getState renders the registry for the operator API. Caller holds mu.
func (m *Master) getState() mesos.GetState {
	var st mesos.GetState
	for _, t := range m.tasks {
		st.GetTasks.Tasks = append(st.GetTasks.Tasks, t.task)
	}
	sort.Slice(st.GetTasks.Tasks, func(i, j int) bool { return st.GetTasks.Tasks[i].TaskID.Value < st.GetTasks.Tasks[j].TaskID.Value })
	st.GetTasks.CompletedTasks = append([]mesos.Task(nil), m.completed...)
	for _, f := range m.frameworks {
		st.GetFrameworks.Frameworks = append(st.GetFrameworks.Frameworks, m.frameworkState(f))
	}
	sort.Slice(st.GetFrameworks.Frameworks, func(i, j int) bool {
		return st.GetFrameworks.Frameworks[i].FrameworkInfo.ID.Val() < st.GetFrameworks.Frameworks[j].FrameworkInfo.ID.Val()
	})
	for _, a := range m.agents {
		if a.recovered {
			st.GetAgents.RecoveredAgents = append(st.GetAgents.RecoveredAgents, a.info)
			continue
		}
		st.GetAgents.Agents = append(st.GetAgents.Agents, m.agentState(a))
	}
	sort.Slice(st.GetAgents.Agents, func(i, j int) bool {
		return st.GetAgents.Agents[i].AgentInfo.ID.Val() < st.GetAgents.Agents[j].AgentInfo.ID.Val()
	})
	sort.Slice(st.GetAgents.RecoveredAgents, func(i, j int) bool {
		return st.GetAgents.RecoveredAgents[i].ID.Val() < st.GetAgents.RecoveredAgents[j].ID.Val()
	})
	return st
}

func (m *Master) frameworkState(f *fwRec) mesos.FrameworkState {
	return mesos.FrameworkState{
		FrameworkInfo: f.info, Active: f.conn != nil, Connected: f.conn != nil, Recovered: f.recovered,
		RegisteredTime:     &mesos.TimeInfo{Nanoseconds: f.registered.UnixNano()},
		AllocatedResources: f.allocated, OfferedResources: f.offered,
	}
}

func (m *Master) agentState(a *agentRec) mesos.AgentState {
	return mesos.AgentState{
		AgentInfo: a.info, Active: a.conn != nil, Version: a.version, PID: a.pid,
		RegisteredTime: &mesos.TimeInfo{Nanoseconds: a.registered.UnixNano()},
		TotalResources: a.total, AllocatedResources: a.used, OfferedResources: a.offered,
	}
}

// getRoles lists every role with a weight or a framework. Caller holds mu.
func (m *Master) getRoles() *mesos.GetRoles {
	roles := map[string]*mesos.Role{}
	role := func(name string) *mesos.Role {
		r := roles[name]
		if r == nil {
			w := m.cfg.Weights[name]
			if w <= 0 {
				w = 1
			}
			r = &mesos.Role{Name: name, Weight: w}
			roles[name] = r
		}
		return r
	}
	for name := range m.cfg.Weights {
		role(name)
	}
	for id, f := range m.frameworks {
		for _, name := range frameworkRoles(f.info) {
			r := role(name)
			r.Frameworks = append(r.Frameworks, mesos.ID{Value: id})
		}
	}
	// What the non-terminal tasks hold comes from the running totals by
	// framework and role (no walk over every task): each role's entries
	// of every framework, normalised once. A role with a live task is
	// listed even when its tasks hold nothing, as a sum over them had it.
	held := map[string]mesos.Resources{}
	for _, roles := range m.held {
		for name, hr := range roles {
			held[name] = hr.appendTo(held[name])
		}
	}
	for name, rs := range held {
		role(name).Resources = rs.Normalize()
	}
	for name, q := range m.quota {
		q := q
		role(name).Quota = &q
	}
	out := &mesos.GetRoles{Roles: []mesos.Role{}}
	for _, r := range roles {
		sort.Slice(r.Frameworks, func(i, j int) bool { return r.Frameworks[i].Value < r.Frameworks[j].Value })
		out.Roles = append(out.Roles, *r)
	}
	sort.Slice(out.Roles, func(i, j int) bool { return out.Roles[i].Name < out.Roles[j].Name })
	return out
}
