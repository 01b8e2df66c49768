package master

import (
	"math"
	"strings"

	"github.com/keelhq/keel/api/mesos"
)

// holdings are the running totals of what the non-terminal tasks in
// m.tasks hold, by framework ID and by the role each task was launched
// under: exactly what an allocation cycle would get by adding up every
// such task, kept as tasks come, go and end so that a cycle costs no
// walk over the tasks. Framework IDs need not be registered (the tasks
// of a removed framework count until they end, as they did before).
//
// Scalars are summed in fixed point (whole units and millionths), so no
// sequence of adds and removes leaves float residue behind; ranges are
// kept as a multiset, so removing one task's range leaves the same range
// of another task (ports of different agents overlap) in place.
type holdings map[string]map[string]*heldRole

// heldRole is one framework's holdings under one role.
type heldRole struct {
	// tasks is how many tasks are counted here; the entry goes with the
	// last of them.
	tasks int
	res   map[heldKey]*heldRes
}

// heldKey identifies entries that add up: same name and the same role
// and reservation fields. It may tell apart entries that Resources
// arithmetic treats as one (two spellings of one reservation); the sum
// of a role is normalised when it is read, which merges them.
type heldKey struct{ name, role, resv string }

// heldRes is the sum of the entries of one key.
type heldRes struct {
	// rep carries the name, role and reservations of the entries.
	rep mesos.Resource
	// entries counts the entries added and not removed; scalars those of
	// them that are not of type RANGES (they make the sum a scalar, as in
	// Resources arithmetic).
	entries, scalars int
	sum              fixed
	ranges           map[mesos.Range]int // each range with how many entries hold it
	// union is the merged ranges, computed again when the set of
	// distinct ranges changes (unionOK false).
	union   []mesos.Range
	unionOK bool
}

// heldKeyOf is the key r adds up under.
func heldKeyOf(r mesos.Resource) heldKey {
	k := heldKey{name: r.Name, role: r.Role}
	if r.Reservation == nil && len(r.Reservations) == 0 {
		return k
	}
	var b strings.Builder
	if v := r.Reservation; v != nil {
		b.WriteString(v.Type)
		b.WriteByte(0)
		b.WriteString(v.Role)
		b.WriteByte(0)
		b.WriteString(v.Principal)
	}
	for _, v := range r.Reservations {
		b.WriteByte(1)
		b.WriteString(v.Type)
		b.WriteByte(0)
		b.WriteString(v.Role)
		b.WriteByte(0)
		b.WriteString(v.Principal)
	}
	k.resv = b.String()
	return k
}

// add counts a task of framework fid under role holding rs.
func (h holdings) add(fid, role string, rs mesos.Resources) {
	roles := h[fid]
	if roles == nil {
		roles = map[string]*heldRole{}
		h[fid] = roles
	}
	hr := roles[role]
	if hr == nil {
		hr = &heldRole{res: map[heldKey]*heldRes{}}
		roles[role] = hr
	}
	hr.tasks++
	for _, r := range rs {
		k := heldKeyOf(r)
		e := hr.res[k]
		if e == nil {
			e = &heldRes{rep: mesos.Resource{Name: r.Name, Role: r.Role, Reservation: r.Reservation, Reservations: r.Reservations}}
			hr.res[k] = e
		}
		e.entries++
		if r.Type != mesos.TypeRanges {
			e.scalars++
			if r.Scalar != nil {
				e.sum = e.sum.plus(toFixed(r.Scalar.Value))
			}
			continue
		}
		if r.Ranges == nil {
			continue
		}
		for _, rg := range r.Ranges.Range {
			if e.ranges == nil {
				e.ranges = map[mesos.Range]int{}
			}
			if e.ranges[rg] == 0 {
				e.unionOK = false
			}
			e.ranges[rg]++
		}
	}
}

// remove takes back what add counted for the same arguments.
func (h holdings) remove(fid, role string, rs mesos.Resources) {
	hr := h[fid][role]
	if hr == nil {
		return
	}
	for _, r := range rs {
		k := heldKeyOf(r)
		e := hr.res[k]
		if e == nil {
			continue
		}
		if e.entries--; e.entries <= 0 {
			delete(hr.res, k)
			continue
		}
		if r.Type != mesos.TypeRanges {
			e.scalars--
			if r.Scalar != nil {
				e.sum = e.sum.minus(toFixed(r.Scalar.Value))
			}
			continue
		}
		if r.Ranges == nil {
			continue
		}
		for _, rg := range r.Ranges.Range {
			switch n := e.ranges[rg]; {
			case n > 1:
				e.ranges[rg] = n - 1
			case n == 1:
				delete(e.ranges, rg)
				e.unionOK = false
			}
		}
	}
	if hr.tasks--; hr.tasks <= 0 {
		delete(h[fid], role)
		if len(h[fid]) == 0 {
			delete(h, fid)
		}
	}
}

// appendTo appends one entry per key of what hr holds, unnormalised:
// the scalar sums as they are (zero and negative included, as adding the
// tasks up would give them) and the merged ranges.
func (hr *heldRole) appendTo(out mesos.Resources) mesos.Resources {
	for _, e := range hr.res {
		if e.scalars > 0 {
			r := e.rep
			r.Type, r.Scalar = mesos.TypeScalar, &mesos.Scalar{Value: e.sum.float()}
			out = append(out, r)
		}
		if len(e.ranges) == 0 {
			continue
		}
		if !e.unionOK {
			all := make([]mesos.Range, 0, len(e.ranges))
			for rg := range e.ranges {
				all = append(all, rg)
			}
			e.union = mesos.Resources{mesos.RangesResource(e.rep.Name, all...)}.Normalize().Ranges(e.rep.Name)
			e.unionOK = true
		}
		r := e.rep
		r.Type, r.Ranges = mesos.TypeRanges, &mesos.RangeSet{Range: e.union}
		out = append(out, r)
	}
	return out
}

// byRole returns what each framework holds per role: its counted tasks
// plus extra (its outstanding offers, by framework ID and role,
// unnormalised), normalised. A framework with neither is absent; a role
// whose tasks add up to nothing is present and empty.
func (h holdings) byRole(extra map[string]map[string]mesos.Resources) map[string]map[string]mesos.Resources {
	out := make(map[string]map[string]mesos.Resources, len(h)+len(extra))
	for fid, roles := range h {
		m := make(map[string]mesos.Resources, len(roles))
		for role, hr := range roles {
			m[role] = append(hr.appendTo(nil), extra[fid][role]...).Normalize()
		}
		out[fid] = m
	}
	for fid, roles := range extra {
		m := out[fid]
		if m == nil {
			m = make(map[string]mesos.Resources, len(roles))
			out[fid] = m
		}
		for role, rs := range roles {
			if _, done := m[role]; !done {
				m[role] = rs.Normalize()
			}
		}
	}
	return out
}

// fixed is a scalar in fixed point: units plus micros millionths, with
// 0 <= micros < 1e6. Sums and differences are exact, so a total goes back
// to exactly zero when what was added is taken away again. (Resources
// arithmetic keeps three decimals; six keep sums of finer values as the
// float sum rounded to three decimals has them.)
type fixed struct{ units, micros int64 }

const microsPerUnit = 1_000_000

// maxFixedUnits bounds one converted value (float64 holds no fraction
// beyond it anyway). A sum may still pass int64's range, past some 1 000
// values that large; it wraps around and comes back exactly when they
// are taken away, so even then nothing is left behind.
const maxFixedUnits = 1 << 53

// toFixed converts v to the nearest millionth (clamped to
// ±maxFixedUnits).
func toFixed(v float64) fixed {
	switch {
	case math.IsNaN(v):
		return fixed{}
	case v >= maxFixedUnits:
		return fixed{units: maxFixedUnits}
	case v <= -maxFixedUnits:
		return fixed{units: -maxFixedUnits}
	}
	u := math.Floor(v)
	f := fixed{units: int64(u), micros: int64(math.Round((v - u) * microsPerUnit))}
	if f.micros == microsPerUnit {
		f.units, f.micros = f.units+1, 0
	}
	return f
}

// plus returns f + g.
func (f fixed) plus(g fixed) fixed {
	f.units, f.micros = f.units+g.units, f.micros+g.micros
	if f.micros >= microsPerUnit {
		f.units, f.micros = f.units+1, f.micros-microsPerUnit
	}
	return f
}

// minus returns f - g.
func (f fixed) minus(g fixed) fixed {
	f.units, f.micros = f.units-g.units, f.micros-g.micros
	if f.micros < 0 {
		f.units, f.micros = f.units-1, f.micros+microsPerUnit
	}
	return f
}

// float returns f as a float64.
func (f fixed) float() float64 { return float64(f.units) + float64(f.micros)/microsPerUnit }

// putTask records t in m.tasks; a non-terminal task counts in m.held.
// Caller holds mu.
func (m *Master) putTask(t *taskRec) {
	id := t.task.TaskID.Value
	if old, ok := m.tasks[id]; ok {
		m.dropTask(old)
	}
	m.tasks[id] = t
	m.byState[t.task.State]++
	if !t.task.State.Terminal() {
		m.held.add(t.task.FrameworkID.Value, t.role, t.task.Resources)
	}
}

// dropTask removes t from m.tasks (and from m.held while it counts there).
// Caller holds mu.
func (m *Master) dropTask(t *taskRec) {
	id := t.task.TaskID.Value
	if m.tasks[id] != t {
		return
	}
	delete(m.tasks, id)
	m.countState(t.task.State, -1)
	if !t.task.State.Terminal() {
		m.held.remove(t.task.FrameworkID.Value, t.role, t.task.Resources)
	}
}

// setTaskState changes the state of t, a task in m.tasks, keeping
// m.byState in step, and m.held when it ends (or, were that ever to
// happen, comes back). Caller holds mu.
func (m *Master) setTaskState(t *taskRec, s mesos.TaskState) {
	old := t.task.State
	was, now := old.Terminal(), s.Terminal()
	t.task.State = s
	if m.tasks[t.task.TaskID.Value] != t {
		return
	}
	if old != s {
		m.countState(old, -1)
		m.countState(s, +1)
	}
	if was == now {
		return
	}
	if now {
		m.held.remove(t.task.FrameworkID.Value, t.role, t.task.Resources)
	} else {
		m.held.add(t.task.FrameworkID.Value, t.role, t.task.Resources)
	}
}

// countState adds d to the count of tasks in state s, dropping the entry
// at zero so that a state no task is in reads as absent, as a count over
// the tasks would have it. Caller holds mu.
func (m *Master) countState(s mesos.TaskState, d int) {
	if n := m.byState[s] + d; n > 0 {
		m.byState[s] = n
	} else {
		delete(m.byState, s)
	}
}
