package master

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sort"

	"github.com/keelhq/keel/api/mesos"
)

// StartTerm runs one leading term of a master on cfg.Store, as Run does
// once elected but without its listener: the caller serves Handler. The
// term ends with ctx; done is closed once it has shut down (every stream
// closed).
func StartTerm(ctx context.Context, cfg Config) (m *Master, done <-chan struct{}, err error) {
	cfg, err = withDefaults(cfg)
	if err != nil {
		return nil, nil, err
	}
	info := masterInfo(cfg, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	m = newTerm(cfg, info, cfg.Store, newMetrics(nil, nil), cfg.Logger)
	if err := m.recover(ctx); err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		m.allocationLoop(ctx)
		m.shutdown()
	}()
	return m, ch, nil
}

// Handler serves the term's APIs.
func (m *Master) Handler() http.Handler { return m.handler() }

// Held returns the running totals of framework fid's non-terminal tasks
// by role (nil when it has none).
func (m *Master) Held(fid string) map[string]mesos.Resources {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.held.byRole(nil)[fid]
}

// CheckHeld compares the running totals, and what an allocation cycle
// gets from them with the offers, against a full recompute from m.tasks
// and m.offers; it returns the first difference.
func (m *Master) CheckHeld() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := sameByRole("tasks", m.held.byRole(nil), m.recomputeByRole(false)); err != nil {
		return err
	}
	return sameByRole("tasks and offers", m.allocatedByRole(), m.recomputeByRole(true))
}

// recomputeByRole adds up every non-terminal task (and, with offers, every
// outstanding offer) by framework ID and role, as allocation cycles did
// before the running totals. Caller holds mu.
func (m *Master) recomputeByRole(offers bool) map[string]map[string]mesos.Resources {
	out := map[string]map[string]mesos.Resources{}
	hold := func(fid, role string, r mesos.Resources) {
		if out[fid] == nil {
			out[fid] = map[string]mesos.Resources{}
		}
		out[fid][role] = append(out[fid][role], r...)
	}
	for _, t := range m.tasks {
		if !t.task.State.Terminal() {
			hold(t.task.FrameworkID.Value, t.role, t.task.Resources)
		}
	}
	if offers {
		for _, o := range m.offers {
			hold(o.offer.FrameworkID.Value, o.role, o.offer.Resources)
		}
	}
	for _, roles := range out {
		for role, rs := range roles {
			roles[role] = rs.Normalize()
		}
	}
	return out
}

func sameByRole(what string, got, want map[string]map[string]mesos.Resources) error {
	if a, b := byRoleKeys(got), byRoleKeys(want); !reflect.DeepEqual(a, b) {
		return fmt.Errorf("%s: running totals have frameworks/roles %v, a recompute %v", what, a, b)
	}
	for fid, roles := range want {
		for role, rs := range roles {
			if !reflect.DeepEqual(got[fid][role], rs) {
				return fmt.Errorf("%s: framework %s role %q: running total %q, a recompute %q", what, fid, role, got[fid][role].String(), rs.String())
			}
		}
	}
	return nil
}

func byRoleKeys(m map[string]map[string]mesos.Resources) []string {
	var out []string
	for fid, roles := range m {
		for role := range roles {
			out = append(out, fid+"/"+role)
		}
	}
	sort.Strings(out)
	return out
}

// CheckAvailable compares, for every agent, the cached available() (when
// it is cached) with total - used - offered computed afresh, and what the
// agent's used and each framework's allocated resources hold with a sum
// over the tasks: the agent's non-terminal tasks, the framework's
// non-terminal tasks that are not unreachable. It returns the first
// difference, and leaves every agent's available() cached, so that a
// change that fails to drop it shows at the next check.
func (m *Master) CheckAvailable() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	used := map[string]mesos.Resources{}
	allocated := map[string]mesos.Resources{}
	for _, t := range m.tasks {
		if t.task.State.Terminal() {
			continue
		}
		used[t.task.AgentID.Value] = append(used[t.task.AgentID.Value], t.task.Resources...)
		if t.task.State != mesos.TaskUnreachable {
			allocated[t.task.FrameworkID.Value] = append(allocated[t.task.FrameworkID.Value], t.task.Resources...)
		}
	}
	ids := make([]string, 0, len(m.agents))
	for id := range m.agents {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := m.agents[id]
		fresh := a.total.Minus(a.used).Minus(a.offered)
		if a.availOK && !reflect.DeepEqual(a.avail, fresh) {
			return fmt.Errorf("agent %s: cached available %q, afresh %q", id, a.avail.String(), fresh.String())
		}
		if got := a.available(); !reflect.DeepEqual(got, fresh) {
			return fmt.Errorf("agent %s: available %q, afresh %q", id, got.String(), fresh.String())
		}
		if got, want := a.used.Normalize().String(), used[id].Normalize().String(); got != want {
			return fmt.Errorf("agent %s: used %q, its live tasks hold %q", id, got, want)
		}
	}
	for id, f := range m.frameworks {
		if got, want := scalars(f.allocated).String(), scalars(allocated[id]).String(); got != want {
			return fmt.Errorf("framework %s: allocated %q, its live tasks hold %q", id, got, want)
		}
	}
	return nil
}

// scalars is the normalised scalar part of rs. (A framework's allocated
// resources are a set: the same ports of two agents count once, and
// leave with either, so its ranges are no sum of its tasks'.)
func scalars(rs mesos.Resources) mesos.Resources {
	var out mesos.Resources
	for _, r := range rs {
		if r.Type != mesos.TypeRanges {
			out = append(out, r)
		}
	}
	return out.Normalize()
}

// CheckRolesAndCounts compares GET_ROLES and the task counts by state,
// which read running totals, against a full recompute from m.tasks: the
// roles as getRoles built them by adding up every non-terminal task, and
// a count of every task by state. It returns the first difference.
func (m *Master) CheckRolesAndCounts() error {
	c := m.counts()
	m.mu.Lock()
	defer m.mu.Unlock()
	if got, want := m.getRoles(), m.recomputeRoles(); !reflect.DeepEqual(got, want) {
		return fmt.Errorf("GET_ROLES from the running totals %+v, a recompute %+v", got.Roles, want.Roles)
	}
	want := map[mesos.TaskState]int{}
	for _, t := range m.tasks {
		want[t.task.State]++
	}
	if !reflect.DeepEqual(c.tasks, want) || !reflect.DeepEqual(m.byState, want) {
		return fmt.Errorf("tasks by state: counts() %v, running count %v, a recompute %v", c.tasks, m.byState, want)
	}
	return nil
}

// recomputeRoles is getRoles as it was before the running totals: every
// non-terminal task's resources added to its role's in turn. Caller
// holds mu.
func (m *Master) recomputeRoles() *mesos.GetRoles {
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
	for _, t := range m.tasks {
		if !t.task.State.Terminal() {
			r := role(t.role)
			r.Resources = r.Resources.Plus(t.task.Resources)
		}
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
