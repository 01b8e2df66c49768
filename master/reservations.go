package master

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/api/mesos"
)

// keyReservations prefixes each agent's dynamic reservations in the
// registry. An agent reports only what it has (static reservations
// included); the dynamic ones frameworks made live with the master, as
// in Mesos, and are laid over the agent's resources whenever it
// (re-)registers.
const keyReservations = "master/reservations/"

// persistReservations records a's dynamic reservations. Caller holds mu.
func (m *Master) persistReservations(a *agentRec) {
	var dyn mesos.Resources
	for _, r := range a.total {
		if r.Dynamic() {
			dyn = append(dyn, r)
		}
	}
	id := a.info.ID.Val()
	if len(dyn) == 0 {
		go m.unpersist(keyReservations + id)
		return
	}
	m.persist(keyReservations+id, dyn)
}

// withReservations lays the stored dynamic reservations dyn over an
// agent's reported resources, one reservation level at a time. What no
// longer fits (the agent shrank) is dropped and logged.
func (m *Master) withReservations(id string, reported, dyn mesos.Resources) mesos.Resources {
	total := reported.Normalize()
	for _, r := range dyn {
		stack := r.ReservationStack()
		for i, ri := range stack {
			if ri.Type != mesos.ReservationDynamic {
				continue
			}
			base := r
			base.Reservations = append([]mesos.ReservationInfo(nil), stack[:i]...)
			base.Reservation, base.Role = nil, ""
			if i > 0 {
				base.Role = stack[i-1].Role
			}
			next, err := allocator.Reserve(total, ri.Role, ri.Principal, mesos.Resources{base})
			if err != nil {
				m.log.Warn("dropping a dynamic reservation the agent no longer has room for", "agent_id", id, "resource", r.Name, "role", ri.Role, "err", err)
				break
			}
			total = next
		}
	}
	return total.Normalize()
}

// loadReservations reads an agent's dynamic reservations from the
// registry.
func (m *Master) loadReservations(ctx context.Context, id string) (mesos.Resources, error) {
	stored, err := m.cfg.Store.List(ctx, keyReservations+id)
	if err != nil {
		return nil, fmt.Errorf("master: load reservations of %s: %w", id, err)
	}
	b, ok := stored[keyReservations+id]
	if !ok {
		return nil, nil
	}
	var dyn mesos.Resources
	if err := json.Unmarshal(b, &dyn); err != nil {
		return nil, fmt.Errorf("master: reservations of %s: %w", id, err)
	}
	return dyn, nil
}
