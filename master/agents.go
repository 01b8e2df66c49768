package master

import (
	"fmt"
	"net/http"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
)

// handleAgent serves agent.Path.
func (m *Master) handleAgent(w http.ResponseWriter, r *http.Request) {
	var call agent.Call
	if !decodeCall(w, r, &call) {
		return
	}
	switch call.Type {
	case agent.CallSubscribe:
		m.subscribeAgent(w, r, &call)
	case agent.CallUpdate:
		if call.Update == nil || call.AgentID == nil {
			httpError(w, http.StatusBadRequest, "Expecting 'agent_id' and 'update' to be present")
			return
		}
		if status, msg := m.agentUpdate(r.Header.Get(agent.StreamIDHeader), call.AgentID.Value, call.Update); status >= 400 {
			httpError(w, status, msg)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case agent.CallPong:
		if call.AgentID == nil {
			httpError(w, http.StatusBadRequest, "Expecting 'agent_id' to be present")
			return
		}
		if status, msg := m.agentPong(r.Header.Get(agent.StreamIDHeader), call.AgentID.Value); status >= 400 {
			httpError(w, status, msg)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		httpError(w, http.StatusBadRequest, "Unknown call type '"+call.Type+"'")
	}
}

func (m *Master) subscribeAgent(w http.ResponseWriter, r *http.Request, call *agent.Call) {
	sub := call.Subscribe
	if sub == nil || sub.AgentInfo.Hostname == "" || sub.IP == "" {
		httpError(w, http.StatusBadRequest, "Expecting 'subscribe' with 'agent_info.hostname' and 'ip'")
		return
	}
	c := newConn(newUUID())
	m.mu.Lock()
	id := sub.AgentInfo.ID.Val()
	a, known := m.agents[id]
	if id == "" {
		m.seq++
		id = fmt.Sprintf("%s-S%d", m.idBase, m.seq)
	}
	if !known {
		a = &agentRec{registered: time.Now()}
		m.agents[id] = a
	} else if a.conn != nil {
		a.conn.close()
	}
	info := sub.AgentInfo
	info.ID = mesos.NewID(id)
	a.info, a.ip, a.version = info, sub.IP, sub.Version
	total := info.Resources.Normalize()
	if dyn, err := m.loadReservations(r.Context(), id); err != nil {
		m.log.Error("could not read the agent's dynamic reservations", "agent_id", id, "err", err)
	} else if len(dyn) > 0 {
		total = m.withReservations(id, total, dyn)
	}
	a.setTotal(total)
	a.pid = mesos.AgentPID(sub.IP, info.Port)
	a.conn, a.streamID, a.recovered = c, c.id, false
	m.disarmTimer("agent/" + id)
	a.missedPings = 0
	m.ping(id, c)
	// Release offers made on the old connection; they may be stale.
	for oid, o := range m.offers {
		if o.offer.AgentID.Value == id {
			m.releaseOffer(oid, true)
		}
	}
	m.reconcileAgent(a, id, sub.Tasks)
	c.send(agent.Event{Type: agent.EventSubscribed, Subscribed: &agent.Subscribed{AgentID: mesos.ID{Value: id}, HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds()}})
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventAgentAdded, AgentAdded: &mesos.AgentAdded{Agent: m.agentState(a)}})
	m.mu.Unlock()
	m.persist(keyAgents+id, storedAgent{Info: info, IP: sub.IP})
	m.log.Info("agent subscribed", "agent_id", id, "hostname", info.Hostname, "ip", sub.IP, "resources", total.String(), "reregister", known)
	m.metrics.subscriptions.WithLabelValues("agent").Inc()
	m.kick()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(agent.StreamIDHeader, c.id)
	w.WriteHeader(http.StatusOK)
	c.serve(r.Context(), w, agent.Event{Type: agent.EventHeartbeat}, m.cfg.HeartbeatInterval)
	m.agentDisconnected(id, c)
}

// reconcileAgent merges the tasks an agent reports on (re)subscription with
// what the master knows: tasks the master lost track of (master restart)
// are taken on; a task the master has live that the agent reports ended
// ends; tasks the master has on this agent that the agent no longer runs
// are lost. Only live tasks count in what the agent uses and frameworks
// hold. Caller holds mu.
func (m *Master) reconcileAgent(a *agentRec, id string, reported []mesos.Task) {
	seen := map[string]bool{}
	for _, rt := range reported {
		seen[rt.TaskID.Value] = true
		if t, ok := m.tasks[rt.TaskID.Value]; ok {
			m.reconcileKnown(t, rt, id)
			continue
		}
		m.takeOn(rt, id)
	}
	var used mesos.Resources
	for _, t := range m.tasks {
		if t.task.AgentID.Value != id || t.task.State.Terminal() {
			continue
		}
		if !seen[t.task.TaskID.Value] && t.task.State != mesos.TaskStaging {
			m.applyStatus(t, masterStatus(t.task.TaskID, &t.task.AgentID, mesos.TaskLost, mesos.ReasonAgentRemoved,
				"Task is not running on the agent after it re-registered"), true)
			continue
		}
		// Reported live, or launched while the agent re-registered (it
		// may still arrive).
		used = append(used, t.task.Resources...)
	}
	a.setUsed(used.Normalize())
}

// reconcileKnown brings t, a task the master has, in line with rt, the
// agent's report of it. A task back from a partition takes the state the
// agent reports; one the master has live and the agent reports ended ends
// (its framework acknowledges the master's update; the agent's own, when
// it comes, goes to the framework as for any ended task). Caller holds mu.
func (m *Master) reconcileKnown(t *taskRec, rt mesos.Task, id string) {
	switch {
	case t.task.State.Terminal():
		return
	case t.task.State == mesos.TaskUnreachable:
		// Back with the agent; it holds its resources again unless it
		// ended meanwhile.
		if f := m.frameworks[t.task.FrameworkID.Value]; f != nil && !rt.State.Terminal() {
			f.allocated = f.allocated.Plus(t.task.Resources)
		}
	case !rt.State.Terminal():
		return
	}
	st, _ := lastStatus(rt)
	st.TaskID, st.AgentID, st.State = rt.TaskID, mesos.NewID(id), rt.State
	st.Source, st.Reason, st.Message, st.Timestamp = mesos.SourceMaster, mesos.ReasonReconciliation, "Agent re-registered", nowSeconds()
	m.applyStatus(t, st, true)
}

// takeOn records rt, a task an agent reports that the master does not
// know, and tells its framework at once, ahead of any offer of the agent
// (same ordered stream), so that it does not launch the task again. A
// task that ended is completed at once, unless the agent reports an
// update of it not yet acknowledged (status_update_uuid): that one is
// forwarded, and the task completes when the framework acknowledges it
// (the acknowledgement goes on to the agent). Caller holds mu.
func (m *Master) takeOn(rt mesos.Task, id string) {
	rt.AgentID = mesos.ID{Value: id}
	t := &taskRec{task: rt, unacked: map[string]mesos.TaskStatus{}}
	f := m.frameworks[rt.FrameworkID.Value]
	if f != nil {
		t.role = frameworkRoles(f.info)[0]
	}
	m.putTask(t)
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventTaskAdded, TaskAdded: &mesos.TaskAdded{Task: rt}})
	if f == nil {
		// No framework to acknowledge anything (as in applyStatus).
		if rt.State.Terminal() {
			m.complete(t)
		}
		return
	}
	ended := rt.State.Terminal()
	if !ended {
		f.allocated = f.allocated.Plus(rt.Resources)
	}
	pending, hasPending := pendingUpdate(rt, id)
	if ended && hasPending {
		t.unacked[string(pending.UUID)] = pending
		m.sendUpdate(f, pending)
		if pending.State == rt.State {
			return
		}
	}
	st, _ := lastStatus(rt)
	st.TaskID, st.AgentID, st.State, st.UUID = rt.TaskID, mesos.NewID(id), rt.State, nil
	st.Source, st.Reason, st.Timestamp = mesos.SourceMaster, mesos.ReasonReconciliation, nowSeconds()
	m.sendUpdate(f, st)
	if ended && !hasPending {
		m.complete(t)
	}
}

// pendingUpdate is the status update of rt, as an agent reports it, that
// the agent has yet to hear acknowledged (status_update_uuid and _state),
// if it names one.
func pendingUpdate(rt mesos.Task, id string) (mesos.TaskStatus, bool) {
	if len(rt.StatusUpdateUUID) == 0 {
		return mesos.TaskStatus{}, false
	}
	st, _ := lastStatus(rt)
	for _, s := range rt.Statuses {
		if string(s.UUID) == string(rt.StatusUpdateUUID) {
			st = s
		}
	}
	st.TaskID, st.AgentID, st.UUID = rt.TaskID, mesos.NewID(id), rt.StatusUpdateUUID
	if rt.StatusUpdateState != "" {
		st.State = rt.StatusUpdateState
	} else if st.State == "" {
		st.State = rt.State
	}
	if st.Source == "" || st.Source == mesos.SourceMaster {
		// It is the agent's to be acknowledged: acknowledge relays it.
		st.Source = mesos.SourceAgent
	}
	if st.Timestamp == 0 {
		st.Timestamp = nowSeconds()
	}
	return st, true
}

// agentDisconnected keeps the agent's tasks for AgentReregisterTimeout,
// then reports them unreachable (or lost) and removes the agent.
func (m *Master) agentDisconnected(id string, c *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.agents[id]
	if !ok || a.conn != c {
		return
	}
	a.conn = nil
	for oid, o := range m.offers {
		if o.offer.AgentID.Value == id {
			m.releaseOffer(oid, true)
		}
	}
	if m.closing {
		return
	}
	m.disarmTimer("ping/" + id)
	budget := m.cfg.AgentPingTimeout * time.Duration(m.cfg.MaxAgentPingTimeouts)
	m.log.Warn("agent disconnected", "agent_id", id, "removed_in", budget)
	m.armTimer("agent/"+id, budget, func() { m.expireAgent(id) })
}

// ping sends a PING on c and arms the next one; an agent that has not
// answered MaxAgentPingTimeouts pings in a row is partitioned: its stream
// is dropped and it is removed at once (Mesos marks it unreachable then).
// Caller holds mu.
func (m *Master) ping(id string, c *conn) {
	a := m.agents[id]
	if a == nil || a.conn != c {
		return
	}
	if a.missedPings >= m.cfg.MaxAgentPingTimeouts {
		m.log.Warn("agent missed its pings; taking it for partitioned", "agent_id", id, "missed", a.missedPings)
		m.metrics.agentPingTimeouts.Inc()
		a.conn = nil
		c.close()
		for oid, o := range m.offers {
			if o.offer.AgentID.Value == id {
				m.releaseOffer(oid, true)
			}
		}
		m.expireAgent(id)
		return
	}
	a.missedPings++
	c.send(agent.Event{Type: agent.EventPing})
	m.armTimer("ping/"+id, m.cfg.AgentPingTimeout, func() { m.ping(id, c) })
}

// subscribedAgent returns the agent a call (with its stream ID) comes
// from, or the HTTP status and reason to refuse the call with. Caller
// holds mu.
func (m *Master) subscribedAgent(streamID, agentID string) (*agentRec, int, string) {
	a, ok := m.agents[agentID]
	if !ok || a.conn == nil {
		return nil, http.StatusForbidden, "Agent " + agentID + " is not subscribed"
	}
	if streamID != a.streamID {
		return nil, http.StatusBadRequest, "Stream ID does not match the agent's subscription"
	}
	return a, 0, ""
}

// agentPong records an agent's answer to PING.
func (m *Master) agentPong(streamID, agentID string) (int, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, status, msg := m.subscribedAgent(streamID, agentID)
	if a == nil {
		return status, msg
	}
	a.missedPings = 0
	return http.StatusAccepted, ""
}

// expireAgent removes an agent that did not come back in time: its tasks
// are reported unreachable (partition-aware frameworks) or lost. Caller
// holds mu.
func (m *Master) expireAgent(id string) {
	a, ok := m.agents[id]
	if !ok || a.conn != nil {
		return
	}
	m.disarmTimer("ping/" + id)
	m.log.Warn("removing agent: it did not come back in time", "agent_id", id)
	for _, t := range m.tasks {
		if t.task.AgentID.Value != id {
			continue
		}
		state := mesos.TaskLost
		if f := m.frameworks[t.task.FrameworkID.Value]; f != nil && f.info.HasCapability(mesos.CapabilityPartitionAware) {
			state = mesos.TaskUnreachable
			if t.task.State != mesos.TaskUnreachable && !t.task.State.Terminal() {
				// Not terminal, but its resources left with the agent.
				f.allocated = f.allocated.Minus(t.task.Resources)
			}
		}
		if t.task.State == mesos.TaskUnreachable {
			continue
		}
		m.applyStatus(t, masterStatus(t.task.TaskID, &t.task.AgentID, state, mesos.ReasonAgentDisconnected, "Agent disconnected"), true)
	}
	delete(m.agents, id)
	go m.unpersist(keyAgents + id)
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventAgentRemoved, AgentRemoved: &mesos.AgentRemoved{AgentID: mesos.ID{Value: id}}})
}

// agentUpdate applies a status update from an agent.
func (m *Master) agentUpdate(streamID, agentID string, u *agent.Update) (int, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, status, msg := m.subscribedAgent(streamID, agentID)
	if a == nil {
		return status, msg
	}
	st := u.Status
	st.AgentID = mesos.NewID(agentID)
	t, ok := m.tasks[st.TaskID.Value]
	if !ok {
		// Not ours to track (e.g. already completed): acknowledge so the agent
		// stops retrying, and tell the framework if it is connected.
		if len(st.UUID) > 0 {
			a.conn.send(agent.Event{Type: agent.EventAcknowledged, Acknowledged: &agent.Acknowledged{TaskID: st.TaskID, UUID: st.UUID}})
		}
		return http.StatusAccepted, ""
	}
	m.metrics.updates.WithLabelValues(string(st.State)).Inc()
	if _, dup := t.unacked[string(st.UUID)]; dup && len(st.UUID) > 0 {
		// A retry: the framework may have missed it, resend as is.
		m.sendUpdate(m.frameworks[t.task.FrameworkID.Value], t.unacked[string(st.UUID)])
		return http.StatusAccepted, ""
	}
	m.applyStatus(t, st, false)
	return http.StatusAccepted, ""
}

// applyStatus records a new status for a task, tells operator subscribers,
// releases resources of terminal tasks and forwards the update to the
// framework (keeping it until acknowledged when it carries a UUID). A
// status generated by the master (fromMaster) gets a UUID of its own so
// the framework acknowledges it too. Caller holds mu.
func (m *Master) applyStatus(t *taskRec, st mesos.TaskStatus, fromMaster bool) {
	if fromMaster {
		st.UUID = newUUIDBytes()
	}
	was := t.task.State
	wasTerminal := was.Terminal()
	if !wasTerminal {
		m.setTaskState(t, st.State)
	}
	t.task.Statuses = append(t.task.Statuses, st)
	if n := len(t.task.Statuses); n > maxStatuses {
		t.task.Statuses = append([]mesos.TaskStatus(nil), t.task.Statuses[n-maxStatuses:]...)
	}
	t.task.StatusUpdateState, t.task.StatusUpdateUUID = st.State, st.UUID
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventTaskUpdated, TaskUpdated: &mesos.TaskUpdated{
		FrameworkID: t.task.FrameworkID, Status: st, State: t.task.State}})
	if st.State.Terminal() && !wasTerminal {
		// An unreachable task's resources left with its agent already.
		if was != mesos.TaskUnreachable {
			if a := m.agents[t.task.AgentID.Value]; a != nil {
				a.setUsed(a.used.Minus(t.task.Resources))
			}
			if f := m.frameworks[t.task.FrameworkID.Value]; f != nil {
				f.allocated = f.allocated.Minus(t.task.Resources)
			}
		}
		m.kick()
	}
	if len(st.UUID) > 0 {
		t.unacked[string(st.UUID)] = st
	}
	f := m.frameworks[t.task.FrameworkID.Value]
	m.sendUpdate(f, st)
	if t.task.State.Terminal() && (f == nil || len(t.unacked) == 0) {
		m.complete(t)
	}
}

// complete moves a terminal task whose updates were all acknowledged to the
// completed list. Caller holds mu.
func (m *Master) complete(t *taskRec) {
	m.dropTask(t)
	m.completed = append(m.completed, t.task)
	if n := len(m.completed); n > maxCompleted {
		m.completed = append([]mesos.Task(nil), m.completed[n-maxCompleted:]...)
	}
}
