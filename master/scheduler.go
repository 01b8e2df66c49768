package master

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
)

// defaultRefuse is the offer filter Mesos applies when a framework declines
// without one.
const defaultRefuse = 5 * time.Second

// handleScheduler serves POST /api/v1/scheduler.
func (m *Master) handleScheduler(w http.ResponseWriter, r *http.Request) {
	var call mesos.Call
	if !decodeCall(w, r, &call) {
		return
	}
	if call.Type == mesos.CallSubscribe {
		m.subscribeFramework(w, r, &call)
		return
	}
	status, msg := m.schedulerCall(r.Header.Get(mesos.StreamIDHeader), &call)
	if status >= 400 {
		httpError(w, status, msg)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (m *Master) subscribeFramework(w http.ResponseWriter, r *http.Request, call *mesos.Call) {
	if r.Header.Get(mesos.StreamIDHeader) != "" {
		httpError(w, http.StatusBadRequest, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
		return
	}
	if call.Subscribe == nil {
		httpError(w, http.StatusBadRequest, "Expecting 'subscribe' to be present")
		return
	}
	info := call.Subscribe.FrameworkInfo
	if info.Name == "" {
		httpError(w, http.StatusBadRequest, "Expecting 'framework_info.name' to be present")
		return
	}
	if call.FrameworkID.Val() != info.ID.Val() {
		httpError(w, http.StatusBadRequest, "'framework_id' differs from 'subscribe.framework_info.id'")
		return
	}
	if status, msg := m.checkRoles(info); status != 0 {
		httpError(w, status, msg)
		return
	}
	c := newConn(newUUID())
	m.mu.Lock()
	id := info.ID.Val()
	f, known := m.frameworks[id]
	if id == "" {
		m.seq++
		id = m.idBase + "-" + fmt.Sprintf("%04d", m.seq)
	}
	info.ID = mesos.NewID(id)
	if !known {
		f = &fwRec{registered: time.Now()}
		m.frameworks[id] = f
	}
	if f.conn != nil {
		// A failed-over scheduler takes over; the old stream ends.
		f.conn.send(mesos.Event{Type: mesos.EventError, Error: &mesos.Error{Message: "Framework failed over"}})
		f.conn.close()
		for oid, o := range m.offers {
			if o.offer.FrameworkID.Value == id {
				m.releaseOffer(oid, false)
			}
		}
	}
	f.info, f.conn, f.streamID, f.suppressed, f.suppressedRoles = info, c, c.id, false, nil
	m.disarmTimer("failover/" + id)
	c.send(mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{
		FrameworkID: mesos.ID{Value: id}, HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds(), MasterInfo: &m.info}})
	// Updates the framework never acknowledged are sent again.
	for _, t := range m.tasks {
		if t.task.FrameworkID.Value != id {
			continue
		}
		for _, st := range t.unacked {
			c.send(mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: st}})
		}
	}
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventFrameworkAdded, FrameworkAdded: &mesos.FrameworkEvent{Framework: m.frameworkState(f)}})
	m.mu.Unlock()
	m.persist(keyFrameworks+id, info)
	m.log.Info("framework subscribed", "framework_id", id, "name", info.Name, "resubscribe", known)
	m.metrics.subscriptions.WithLabelValues("framework").Inc()
	m.kick()

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(mesos.StreamIDHeader, c.id)
	w.WriteHeader(http.StatusOK)
	c.serve(r.Context(), w, mesos.Event{Type: mesos.EventHeartbeat}, m.cfg.HeartbeatInterval)
	m.frameworkDisconnected(id, c)
}

// frameworkDisconnected handles the end of a framework's stream: its
// offers go back and it has failover_timeout to come back.
func (m *Master) frameworkDisconnected(id string, c *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.frameworks[id]
	if !ok || f.conn != c {
		return
	}
	f.conn = nil
	for oid, o := range m.offers {
		if o.offer.FrameworkID.Value == id {
			m.releaseOffer(oid, false)
		}
	}
	if !m.closing {
		m.log.Info("framework disconnected", "framework_id", id)
		m.armFailover(id)
	}
}

// armFailover removes the framework (killing its tasks) when it stays
// away longer than its failover_timeout.
func (m *Master) armFailover(id string) {
	f := m.frameworks[id]
	d := time.Duration(f.info.FailoverTimeout * float64(time.Second))
	m.armTimer("failover/"+id, d, func() {
		if f, ok := m.frameworks[id]; ok && f.conn == nil {
			m.log.Info("framework failover timeout expired; removing it", "framework_id", id)
			m.removeFramework(id)
		}
	})
}

// removeFramework kills the framework's tasks and forgets it. Caller holds mu.
func (m *Master) removeFramework(id string) {
	f := m.frameworks[id]
	for _, t := range m.tasks {
		if t.task.FrameworkID.Value == id {
			m.sendKill(t, nil)
		}
	}
	for oid, o := range m.offers {
		if o.offer.FrameworkID.Value == id {
			m.releaseOffer(oid, false)
		}
	}
	delete(m.frameworks, id)
	m.disarmTimer("failover/" + id)
	go m.unpersist(keyFrameworks + id)
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventFrameworkRemoved, FrameworkRemoved: &mesos.FrameworkRemoved{FrameworkInfo: f.info}})
}

// schedulerCall executes a non-SUBSCRIBE call and returns an HTTP status
// and message.
func (m *Master) schedulerCall(streamID string, call *mesos.Call) (int, string) {
	if call.FrameworkID == nil || call.FrameworkID.Value == "" {
		return http.StatusBadRequest, "Expecting 'framework_id' to be present"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	id := call.FrameworkID.Value
	f, ok := m.frameworks[id]
	if !ok || f.conn == nil {
		return http.StatusForbidden, "Framework is not subscribed"
	}
	if streamID == "" {
		return http.StatusBadRequest, "All non-subscribe calls should include the 'Mesos-Stream-Id' header"
	}
	if streamID != f.streamID {
		return http.StatusBadRequest, "The stream ID '" + streamID + "' included in this request didn't match the stream ID currently associated with framework ID " + id
	}
	m.metrics.calls.WithLabelValues(call.Type).Inc()
	switch call.Type {
	case mesos.CallAccept:
		if call.Accept == nil {
			return http.StatusBadRequest, "Expecting 'accept' to be present"
		}
		m.accept(f, call.Accept)
	case mesos.CallDecline:
		if call.Decline == nil {
			return http.StatusBadRequest, "Expecting 'decline' to be present"
		}
		for _, oid := range call.Decline.OfferIDs {
			if o, ok := m.offers[oid.Value]; ok && o.offer.FrameworkID.Value == id {
				m.releaseOffer(oid.Value, false)
				m.addFilter(id, o.offer.AgentID.Value, o.role, call.Decline.Filters)
			}
		}
	case mesos.CallRevive:
		// REVIVE without roles revives all of them (Mesos).
		var roles []string
		if call.Revive != nil {
			roles = call.Revive.Roles
		}
		if len(roles) == 0 {
			f.suppressed, f.suppressedRoles = false, nil
		}
		for _, r := range roles {
			delete(f.suppressedRoles, r)
		}
		for k := range m.filters {
			if k.framework == id && (len(roles) == 0 || contains(roles, k.role)) {
				delete(m.filters, k)
			}
		}
		m.kick()
	case mesos.CallSuppress:
		if call.Suppress == nil || len(call.Suppress.Roles) == 0 {
			f.suppressed = true
			break
		}
		if f.suppressedRoles == nil {
			f.suppressedRoles = map[string]bool{}
		}
		for _, r := range call.Suppress.Roles {
			f.suppressedRoles[r] = true
		}
	case mesos.CallKill:
		if call.Kill == nil {
			return http.StatusBadRequest, "Expecting 'kill' to be present"
		}
		t, ok := m.tasks[call.Kill.TaskID.Value]
		if !ok || t.task.FrameworkID.Value != id {
			m.sendUpdate(f, masterStatus(call.Kill.TaskID, call.Kill.AgentID, unknownState(f.info), mesos.ReasonReconciliation, "Kill of unknown task"))
			break
		}
		m.sendKill(t, call.Kill.KillPolicy)
	case mesos.CallAcknowledge:
		if call.Acknowledge == nil {
			return http.StatusBadRequest, "Expecting 'acknowledge' to be present"
		}
		m.acknowledge(id, call.Acknowledge)
	case mesos.CallReconcile:
		m.reconcile(f, call.Reconcile)
	case mesos.CallTeardown:
		m.log.Info("framework teardown", "framework_id", id)
		f.conn.close()
		m.removeFramework(id)
	case mesos.CallMessage, mesos.CallRequest, mesos.CallShutdown:
		// No custom executors in Keel: nothing to deliver.
	default:
		return http.StatusBadRequest, "Unknown call type '" + call.Type + "'"
	}
	return http.StatusAccepted, ""
}

func (m *Master) addFilter(fid, aid, role string, f *mesos.Filters) {
	d := defaultRefuse
	if f != nil && f.RefuseSeconds != nil {
		d = time.Duration(*f.RefuseSeconds * float64(time.Second))
	}
	if d > 0 {
		m.filters[filterKey{fid, aid, role}] = time.Now().Add(d)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// accept applies the operations of an ACCEPT to its offers, in order:
// RESERVE and UNRESERVE change the pool (and the agent's resources) for
// the operations after them; LAUNCH starts tasks on what the pool holds.
// Whatever is left goes back to the allocator. Caller holds mu.
func (m *Master) accept(f *fwRec, acc *mesos.Accept) {
	fid := f.info.ID.Value
	var pool mesos.Resources
	var agentID, role string
	valid := len(acc.OfferIDs) > 0
	reason := ""
	for _, oid := range acc.OfferIDs {
		o, ok := m.offers[oid.Value]
		switch {
		case !ok:
			valid, reason = false, "Offer "+oid.Value+" is no longer valid"
		case o.offer.FrameworkID.Value != fid:
			valid, reason = false, "Offer "+oid.Value+" belongs to another framework"
		case agentID != "" && o.offer.AgentID.Value != agentID:
			valid, reason = false, "Offers span more than one agent"
		case role != "" && o.role != role:
			valid, reason = false, "Offers are allocated to different roles"
		default:
			agentID, role = o.offer.AgentID.Value, o.role
			pool = pool.Plus(o.offer.Resources)
		}
	}
	if len(acc.OfferIDs) == 0 {
		reason = "No offers given"
	}
	for _, oid := range acc.OfferIDs {
		if o, ok := m.offers[oid.Value]; ok && o.offer.FrameworkID.Value == fid {
			m.releaseOffer(oid.Value, false)
		}
	}
	a := m.agents[agentID]
	if valid && (a == nil || a.conn == nil) {
		valid, reason = false, "Agent "+agentID+" is not connected"
	}
	for _, op := range acc.Operations {
		switch op.Type {
		case mesos.OperationReserve, mesos.OperationUnreserve:
			if !valid {
				m.log.Warn("dropping an operation of an invalid ACCEPT", "framework_id", fid, "operation", op.Type, "reason", reason)
				continue
			}
			next, err := m.reserveOp(f, a, role, pool, op)
			if err != nil {
				// Mesos drops a bad operation and goes on with the rest.
				m.log.Warn("refused an offer operation", "framework_id", fid, "agent_id", agentID, "operation", op.Type, "err", err)
				continue
			}
			pool = next
		case mesos.OperationLaunch:
			if op.Launch == nil {
				continue
			}
			for _, ti := range op.Launch.TaskInfos {
				if !valid {
					m.sendUpdate(f, masterStatus(ti.TaskID, &ti.AgentID, mesos.TaskDropped, mesos.ReasonInvalidOffers, reason))
					continue
				}
				if msg := m.validateTask(&ti, agentID, pool); msg != "" {
					m.sendUpdate(f, masterStatus(ti.TaskID, &ti.AgentID, mesos.TaskError, mesos.ReasonTaskInvalid, msg))
					continue
				}
				pool = pool.Minus(ti.Resources)
				m.launch(f, a, role, ti)
			}
		}
	}
	if agentID != "" {
		m.addFilter(fid, agentID, role, acc.Filters)
	}
	m.kick()
}

// reserveOp applies one RESERVE or UNRESERVE to the accepted pool and to
// the agent's resources, and records the agent's dynamic reservations in
// the registry. Frameworks may only reserve to (or under) the role the
// offer was allocated to. Caller holds mu.
func (m *Master) reserveOp(f *fwRec, a *agentRec, role string, pool mesos.Resources, op mesos.Operation) (mesos.Resources, error) {
	var res mesos.Resources
	switch {
	case op.Type == mesos.OperationReserve && op.Reserve != nil:
		res = op.Reserve.Resources
	case op.Type == mesos.OperationUnreserve && op.Unreserve != nil:
		res = op.Unreserve.Resources
	default:
		return nil, fmt.Errorf("%s without its resources", op.Type)
	}
	// Group the resources by the role they reserve to (Mesos allows one
	// operation to name several).
	byRole := map[string]mesos.Resources{}
	principal := map[string]string{}
	for _, r := range res {
		target := r.ReservationRole()
		if !r.Dynamic() {
			return nil, fmt.Errorf("%s of %s needs a dynamic reservation", op.Type, r.Name)
		}
		if target != role && !strings.HasPrefix(target, role+"/") {
			return nil, fmt.Errorf("role %q is not the offer's role %q or under it", target, role)
		}
		stack := r.ReservationStack()
		principal[target] = stack[len(stack)-1].Principal
		byRole[target] = append(byRole[target], r)
	}
	next, total := pool, a.total
	for target, rs := range byRole {
		var err error
		if op.Type == mesos.OperationReserve {
			// Reserve takes the resources as they are now: without the
			// reservation being added.
			var want mesos.Resources
			for _, r := range rs {
				r.Reservations = r.ReservationStack()[:len(r.ReservationStack())-1]
				r.Reservation = nil
				r.Role = ""
				if len(r.Reservations) > 0 {
					r.Role = r.Reservations[len(r.Reservations)-1].Role
				}
				want = append(want, r)
			}
			if next, err = allocator.Reserve(next, target, principal[target], want); err != nil {
				return nil, err
			}
			if total, err = allocator.Reserve(total, target, principal[target], want); err != nil {
				return nil, err
			}
		} else {
			if next, err = allocator.Unreserve(next, target, rs); err != nil {
				return nil, err
			}
			if total, err = allocator.Unreserve(total, target, rs); err != nil {
				return nil, err
			}
		}
	}
	a.setTotal(total.Normalize())
	m.log.Info("offer operation applied", "operation", op.Type, "agent_id", a.info.ID.Val(), "resources", res.String())
	m.persistReservations(a)
	return next, nil
}

func (m *Master) validateTask(ti *mesos.TaskInfo, agentID string, pool mesos.Resources) string {
	switch {
	case ti.TaskID.Value == "":
		return "Task ID is empty"
	case m.tasks[ti.TaskID.Value] != nil:
		return "Task " + ti.TaskID.Value + " already exists"
	case ti.AgentID.Value != agentID:
		return "Task uses agent " + ti.AgentID.Value + " but the offers are for " + agentID
	case ti.Command == nil && ti.Container == nil:
		return "Task has neither a command nor a container"
	case len(ti.Resources) == 0:
		return "Task uses no resources"
	case !pool.Contains(ti.Resources):
		return "Task uses more resources " + ti.Resources.String() + " than available " + pool.String()
	}
	return ""
}

// launch records the task and sends it to its agent. Caller holds mu.
func (m *Master) launch(f *fwRec, a *agentRec, role string, ti mesos.TaskInfo) {
	t := &taskRec{role: role, task: mesos.Task{
		Name: ti.Name, TaskID: ti.TaskID, FrameworkID: *f.info.ID, AgentID: ti.AgentID,
		State: mesos.TaskStaging, Resources: ti.Resources, Labels: ti.Labels, Discovery: ti.Discovery,
		Container: ti.Container, HealthCheck: ti.HealthCheck, KillPolicy: ti.KillPolicy, User: f.info.User,
	}, unacked: map[string]mesos.TaskStatus{}}
	m.putTask(t)
	a.setUsed(a.used.Plus(ti.Resources))
	f.allocated = f.allocated.Plus(ti.Resources)
	m.metrics.launched.Inc()
	m.opBroadcast(mesos.OperatorEvent{Type: mesos.OpEventTaskAdded, TaskAdded: &mesos.TaskAdded{Task: t.task}})
	a.conn.send(agent.Event{Type: agent.EventLaunch, Launch: &agent.Launch{FrameworkID: *f.info.ID, FrameworkInfo: f.info, Task: ti}})
}

// sendKill asks the task's agent to kill it; a task on a disconnected or
// vanished agent is reported per the framework's capabilities. Caller holds mu.
func (m *Master) sendKill(t *taskRec, kp *mesos.KillPolicy) {
	a := m.agents[t.task.AgentID.Value]
	if a != nil && a.conn != nil {
		a.conn.send(agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: t.task.FrameworkID, TaskID: t.task.TaskID, KillPolicy: kp}})
		return
	}
	if a == nil {
		// No agent will ever answer: the task is gone.
		st := masterStatus(t.task.TaskID, &t.task.AgentID, mesos.TaskKilled, mesos.ReasonAgentRemoved, "Killed: agent is gone")
		m.applyStatus(t, st, true)
	}
}

func unknownState(info mesos.FrameworkInfo) mesos.TaskState {
	if info.HasCapability(mesos.CapabilityPartitionAware) {
		return mesos.TaskUnknown
	}
	return mesos.TaskLost
}

func masterStatus(tid mesos.ID, aid *mesos.ID, state mesos.TaskState, reason, msg string) mesos.TaskStatus {
	return mesos.TaskStatus{TaskID: tid, AgentID: aid, State: state, Source: mesos.SourceMaster, Reason: reason,
		Message: msg, Timestamp: nowSeconds()}
}

// sendUpdate forwards a status to the framework without recording it (for
// tasks the master does not track, and reconciliation answers).
func (m *Master) sendUpdate(f *fwRec, st mesos.TaskStatus) {
	if f != nil {
		f.conn.send(mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: st}})
	}
}

// acknowledge relays a framework's acknowledgement to the agent. Caller holds mu.
func (m *Master) acknowledge(fid string, ack *mesos.Acknowledge) {
	t, ok := m.tasks[ack.TaskID.Value]
	if !ok || t.task.FrameworkID.Value != fid {
		return
	}
	key := string(ack.UUID)
	st, ok := t.unacked[key]
	if !ok {
		return
	}
	delete(t.unacked, key)
	if st.Source != mesos.SourceMaster {
		if a := m.agents[t.task.AgentID.Value]; a != nil {
			a.conn.send(agent.Event{Type: agent.EventAcknowledged, Acknowledged: &agent.Acknowledged{TaskID: ack.TaskID, UUID: ack.UUID}})
		}
	}
	if t.task.State.Terminal() && len(t.unacked) == 0 {
		m.complete(t)
	}
}

// reconcile answers RECONCILE: the latest state of the named tasks (or all
// of the framework's tasks when none are named). Caller holds mu.
func (m *Master) reconcile(f *fwRec, rec *mesos.Reconcile) {
	fid := f.info.ID.Value
	send := func(t *taskRec) {
		st, _ := lastStatus(t.task)
		st.State = t.task.State
		st.TaskID = t.task.TaskID
		st.AgentID = &t.task.AgentID
		st.UUID = nil
		st.Reason = mesos.ReasonReconciliation
		st.Source = mesos.SourceMaster
		m.sendUpdate(f, st)
	}
	if rec == nil || len(rec.Tasks) == 0 {
		for _, t := range m.tasks {
			if t.task.FrameworkID.Value == fid {
				send(t)
			}
		}
		return
	}
	for _, rt := range rec.Tasks {
		if t, ok := m.tasks[rt.TaskID.Value]; ok && t.task.FrameworkID.Value == fid {
			send(t)
			continue
		}
		// As Mesos: no answer while the task's agent (or, without an agent
		// ID, any agent) from before a master restart has yet to come back;
		// it will report the task when it does.
		if rt.AgentID != nil {
			if a := m.agents[rt.AgentID.Value]; a != nil && a.recovered {
				continue
			}
		} else if m.recovering() {
			continue
		}
		m.sendUpdate(f, masterStatus(rt.TaskID, rt.AgentID, unknownState(f.info), mesos.ReasonReconciliation, "Reconciliation: task is unknown"))
	}
}

func lastStatus(t mesos.Task) (mesos.TaskStatus, bool) {
	if n := len(t.Statuses); n > 0 {
		return t.Statuses[n-1], true
	}
	return mesos.TaskStatus{}, false
}

func itoa(n int) string { return strconv.Itoa(n) }

// decodeCall reads a JSON call body (at most maxBody bytes) into v, writing
// a 4xx and returning false when it cannot.
func decodeCall(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpError(w, http.StatusMethodNotAllowed, "Expecting a POST request")
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !jsonContent(ct) {
		httpError(w, http.StatusUnsupportedMediaType, "Expecting 'Content-Type' of application/json")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if asMaxBytes(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, "Request body exceeds "+strconv.Itoa(maxBody)+" bytes")
			return false
		}
		httpError(w, http.StatusBadRequest, "Failed to parse body into JSON: "+err.Error())
		return false
	}
	return true
}
