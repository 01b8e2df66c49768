package master

import (
	"context"
	"net/http"
	"time"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/api/mesos"
)

// allocationLoop runs a cycle every AllocationInterval and whenever kick
// asks for one.
func (m *Master) allocationLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.AllocationInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.trigger:
		}
		m.allocate(time.Now())
	}
}

// allocate runs one allocation cycle and sends the resulting offers.
func (m *Master) allocate(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return
	}
	st := allocator.State{Now: now, Weights: m.cfg.Weights, Quota: m.allocatorQuota()}
	byRole := m.allocatedByRole()
	for id, a := range m.agents {
		if a.conn == nil {
			continue
		}
		st.Agents = append(st.Agents, allocator.Agent{ID: id, Total: a.total, Available: a.available()})
	}
	for id, f := range m.frameworks {
		if f.conn == nil {
			continue
		}
		var suppressed []string
		for r := range f.suppressedRoles {
			suppressed = append(suppressed, r)
		}
		st.Frameworks = append(st.Frameworks, allocator.Framework{
			ID: id, Roles: frameworkRoles(f.info), Suppressed: f.suppressed, SuppressedRoles: suppressed, AllocatedByRole: byRole[id]})
	}
	for k, until := range m.filters {
		if !now.Before(until) {
			delete(m.filters, k)
			continue
		}
		st.Filters = append(st.Filters, allocator.Filter{FrameworkID: k.framework, AgentID: k.agent, Role: k.role, Until: until})
	}
	if len(st.Agents) == 0 || len(st.Frameworks) == 0 {
		return
	}
	start := time.Now()
	decisions := allocator.Allocate(st)
	m.metrics.allocationSeconds.Observe(time.Since(start).Seconds())
	byFw := map[string][]mesos.Offer{}
	for _, d := range decisions {
		a, f := m.agents[d.AgentID], m.frameworks[d.FrameworkID]
		m.seq++
		o := mesos.Offer{
			ID:          mesos.ID{Value: m.idBase + "-O" + itoa(m.seq)},
			FrameworkID: mesos.ID{Value: d.FrameworkID},
			AgentID:     mesos.ID{Value: d.AgentID},
			Hostname:    a.info.Hostname,
			Resources:   d.Resources,
			Attributes:  a.info.Attributes,
		}
		role := d.Role
		if role == "" {
			role = frameworkRoles(f.info)[0]
		}
		o.AllocationInfo = &mesos.AllocationInfo{Role: role}
		m.offers[o.ID.Value] = &offerRec{offer: o, role: role, created: now}
		if m.cfg.OfferTimeout > 0 {
			oid := o.ID.Value
			m.armTimer("offer/"+oid, m.cfg.OfferTimeout, func() {
				if m.releaseOffer(oid, true) != nil {
					m.log.Debug("offer timed out; rescinded", "offer_id", oid)
					m.kick()
				}
			})
		}
		a.setOffered(a.offered.Plus(d.Resources))
		f.offered = f.offered.Plus(d.Resources)
		byFw[d.FrameworkID] = append(byFw[d.FrameworkID], o)
	}
	for fid, offers := range byFw {
		m.metrics.offers.Add(float64(len(offers)))
		m.frameworks[fid].conn.send(mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: offers}})
	}
}

// allocatedByRole is what each framework holds per role: its
// non-terminal tasks (the running totals in m.held, so no walk over the
// tasks) and its outstanding offers. Caller holds mu.
func (m *Master) allocatedByRole() map[string]map[string]mesos.Resources {
	offered := map[string]map[string]mesos.Resources{}
	for _, o := range m.offers {
		fid := o.offer.FrameworkID.Value
		if offered[fid] == nil {
			offered[fid] = map[string]mesos.Resources{}
		}
		offered[fid][o.role] = append(offered[fid][o.role], o.offer.Resources...)
	}
	return m.held.byRole(offered)
}

// releaseOffer removes an offer and returns its resources to the pool.
// rescind tells the framework it is gone.
func (m *Master) releaseOffer(id string, rescind bool) *offerRec {
	o, ok := m.offers[id]
	if !ok {
		return nil
	}
	delete(m.offers, id)
	m.disarmTimer("offer/" + id)
	if a := m.agents[o.offer.AgentID.Value]; a != nil {
		a.setOffered(a.offered.Minus(o.offer.Resources))
	}
	if f := m.frameworks[o.offer.FrameworkID.Value]; f != nil {
		f.offered = f.offered.Minus(o.offer.Resources)
		if rescind {
			m.metrics.offersRescinded.Inc()
			f.conn.send(mesos.Event{Type: mesos.EventRescind, Rescind: &mesos.Rescind{OfferID: o.offer.ID}})
		}
	}
	return o
}

// frameworkRoles are the roles a framework subscribes with: Roles for
// MULTI_ROLE frameworks, else Role, else "*".
func frameworkRoles(info mesos.FrameworkInfo) []string {
	if len(info.Roles) > 0 {
		return info.Roles
	}
	if info.Role != "" {
		return []string{info.Role}
	}
	return []string{"*"}
}

// checkRoles validates a subscribing framework's roles: 400 for a name
// Mesos would refuse, 403 for a role outside the --roles whitelist.
func (m *Master) checkRoles(info mesos.FrameworkInfo) (int, string) {
	for _, r := range frameworkRoles(info) {
		if err := allocator.ValidRole(r); err != nil {
			return http.StatusBadRequest, "Invalid 'framework_info.roles': " + err.Error()
		}
		if r == "*" || len(m.cfg.Roles) == 0 {
			continue
		}
		allowed := false
		for _, w := range m.cfg.Roles {
			allowed = allowed || w == r
		}
		if !allowed {
			return http.StatusForbidden, "Role '" + r + "' is not present in the master's --roles"
		}
	}
	return 0, ""
}
