package master

import (
	"fmt"
	"log/slog"
	"math/rand"
	"reflect"
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

// sumOf is what adding rs up gives, the way allocation cycles did before
// the running totals: every entry appended, normalised once.
func sumOf(rs ...mesos.Resources) mesos.Resources {
	var all mesos.Resources
	for _, r := range rs {
		all = append(all, r...)
	}
	return all.Normalize()
}

// Many adds and removes of values floats cannot hold exactly, in random
// order, leave the total equal to the sum of what is left, and nothing
// at all once everything is gone.
func TestHoldingsNoDrift(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	task := func(i int) mesos.Resources {
		return mesos.Resources{mesos.ScalarResource("cpus", 0.1), mesos.ScalarResource("mem", 0.3+float64(i%7)/1000),
			mesos.RangesResource("ports", mesos.Range{Begin: 31000 + uint64(i%50), End: 31000 + uint64(i%50)})}
	}
	h := holdings{}
	live := map[int]bool{}
	for i := range 20000 {
		h.add("f", "r", task(i))
		live[i] = true
	}
	order := rng.Perm(20000)
	for n, i := range order {
		h.remove("f", "r", task(i))
		delete(live, i)
		if n%4999 == 0 || n == 19990 {
			var left []mesos.Resources
			for j := range live {
				left = append(left, task(j))
			}
			if got, want := h.byRole(nil)["f"]["r"], sumOf(left...); !reflect.DeepEqual(got, want) {
				t.Fatalf("after %d removes: total %q, sum of the rest %q", n+1, got.String(), want.String())
			}
		}
	}
	if len(h) != 0 {
		t.Fatalf("all removed, still held: %v", h.byRole(nil))
	}
}

// What the totals give matches adding the entries up, for entries of
// mixed spellings and kinds, zero and negative values, and with offers.
func TestHoldingsLikeASum(t *testing.T) {
	static := mesos.Resource{Name: "cpus", Type: mesos.TypeScalar, Scalar: &mesos.Scalar{Value: 1}, Role: "prod"}
	refined := mesos.Resource{Name: "cpus", Type: mesos.TypeScalar, Scalar: &mesos.Scalar{Value: 2},
		Reservations: []mesos.ReservationInfo{{Type: mesos.ReservationStatic, Role: "prod"}}}
	tasks := []mesos.Resources{
		{static, mesos.ScalarResource("mem", 10)},
		{refined, mesos.ScalarResource("mem", 0.0005)},
		{mesos.ScalarResource("cpus", -1), mesos.RangesResource("ports", mesos.Range{Begin: 5, End: 9})},
		{mesos.ScalarResource("disk", 0)},
		{mesos.RangesResource("ports", mesos.Range{Begin: 7, End: 12}), mesos.RangesResource("ports", mesos.Range{Begin: 13, End: 13})},
	}
	offer := mesos.Resources{mesos.ScalarResource("cpus", 3), mesos.RangesResource("ports", mesos.Range{Begin: 1, End: 4})}
	h := holdings{}
	for _, rs := range tasks {
		h.add("f", "r", rs)
	}
	got := h.byRole(map[string]map[string]mesos.Resources{"f": {"r": offer}, "g": {"x": offer}})
	want := map[string]map[string]mesos.Resources{
		"f": {"r": sumOf(append(append([]mesos.Resources{}, tasks...), offer)...)},
		"g": {"x": sumOf(offer)},
	}
	if got["f"]["r"].Scalar("cpus") != 5 || got["f"]["r"].String() != want["f"]["r"].String() || !reflect.DeepEqual(got["g"], want["g"]) || len(got) != 2 {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Without the offers: the negative cpus count against the reserved
	// ones as in a sum (3 - 1 of different roles: both kept apart).
	if g, w := h.byRole(nil)["f"]["r"], sumOf(tasks...); g.String() != w.String() {
		t.Fatalf("tasks only: %q, want %q", g.String(), w.String())
	}
	// Taking away the port range 5-9 leaves 7-9 held by the other task.
	h.remove("f", "r", tasks[2])
	if g, w := h.byRole(nil)["f"]["r"], sumOf(tasks[0], tasks[1], tasks[3], tasks[4]); g.String() != w.String() || mesos.FormatRanges(g.Ranges("ports")) != "[7-13]" {
		t.Fatalf("after a remove: %q, want %q", g.String(), w.String())
	}
	// A role whose tasks hold nothing is there, empty, as in a sum.
	for _, i := range []int{0, 1, 4} {
		h.remove("f", "r", tasks[i])
	}
	if rs, ok := h.byRole(nil)["f"]["r"]; !ok || len(rs) != 0 {
		t.Fatalf("one zero task left: %v %v", rs, ok)
	}
	h.remove("f", "r", tasks[3])
	if len(h) != 0 {
		t.Fatalf("nothing left, still held: %v", h.byRole(nil))
	}
}

func TestFixed(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want fixed
	}{
		{0.1, fixed{0, 100000}}, {-0.25, fixed{-1, 750000}}, {2.9999999, fixed{3, 0}}, {64, fixed{64, 0}},
		{1e300, fixed{maxFixedUnits, 0}}, {-1e300, fixed{-maxFixedUnits, 0}},
	} {
		if got := toFixed(c.v); got != c.want {
			t.Errorf("toFixed(%g) = %+v, want %+v", c.v, got, c.want)
		}
	}
	if got := toFixed(0.1).plus(toFixed(0.2)).minus(toFixed(0.3)); got != (fixed{}) {
		t.Errorf("0.1 + 0.2 - 0.3 = %+v", got)
	}
	// Past int64's range and back: exact again.
	var f fixed
	for range 3000 {
		f = f.plus(toFixed(1e300))
	}
	f = f.plus(toFixed(0.5))
	for range 3000 {
		f = f.minus(toFixed(1e300))
	}
	if f.float() != 0.5 {
		t.Errorf("after wrapping around: %+v", f)
	}
}

// GET_ROLES and the task counts by state, read from running totals, equal
// a full recompute after every step of a random run of launches, state
// changes (into and out of the terminal states, and of stale records no
// longer in m.tasks), replacements and removals, over tasks of several
// frameworks and roles, and once every task is gone.
func TestRolesAndCountsLikeARecompute(t *testing.T) {
	m := newTerm(Config{Weights: map[string]float64{"w": 2, "eng": 3}}, mesos.MasterInfo{}, nil, newMetrics(nil, nil), slog.Default())
	m.quota["q"] = mesos.QuotaConfig{Role: "q"}
	for i, info := range []mesos.FrameworkInfo{{}, {Role: "eng"}, {Roles: []string{"eng", "w", "x"}}} {
		id := fmt.Sprintf("f%d", i)
		info.ID = &mesos.ID{Value: id}
		m.frameworks[id] = &fwRec{info: info}
	}
	states := []mesos.TaskState{mesos.TaskStaging, mesos.TaskStarting, mesos.TaskRunning, mesos.TaskKilling, mesos.TaskUnreachable,
		mesos.TaskFinished, mesos.TaskFailed, mesos.TaskKilled, mesos.TaskLost, mesos.TaskGone}
	roles := []string{"*", "eng", "w", "x", "y"}
	rng := rand.New(rand.NewSource(2))
	newTask := func(id string) *taskRec {
		rs := mesos.Resources{mesos.ScalarResource("cpus", float64(rng.Intn(2000))/1000), mesos.ScalarResource("mem", float64(rng.Intn(64)))}
		if rng.Intn(2) == 0 {
			p := 31000 + uint64(rng.Intn(20))
			rs = append(rs, mesos.RangesResource("ports", mesos.Range{Begin: p, End: p + uint64(rng.Intn(3))}))
		}
		if rng.Intn(10) == 0 {
			rs = mesos.Resources{mesos.ScalarResource("disk", 0)} // holds nothing: its role is still listed
		}
		return &taskRec{role: roles[rng.Intn(len(roles))], task: mesos.Task{TaskID: mesos.ID{Value: id},
			FrameworkID: mesos.ID{Value: fmt.Sprintf("f%d", rng.Intn(4))}, State: states[rng.Intn(len(states))], Resources: rs}}
	}
	var stale []*taskRec // records replaced or removed: state changes to them must count nowhere
	check := func(step int) {
		t.Helper()
		if err := m.CheckRolesAndCounts(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	for step := range 3000 {
		id := fmt.Sprintf("t%d", rng.Intn(200))
		m.mu.Lock()
		old, op := m.tasks[id], rng.Intn(10)
		switch {
		case op < 4:
			if old != nil {
				stale = append(stale, old)
			}
			m.putTask(newTask(id))
		case op < 8 && old != nil:
			m.setTaskState(old, states[rng.Intn(len(states))])
		case op < 9 && len(stale) > 0:
			m.setTaskState(stale[rng.Intn(len(stale))], states[rng.Intn(len(states))])
		case old != nil:
			m.dropTask(old)
			m.dropTask(old) // a second drop of the same record changes nothing
			stale = append(stale, old)
		}
		m.mu.Unlock()
		check(step)
	}
	m.mu.Lock()
	for _, tr := range m.tasks {
		m.dropTask(tr)
	}
	n, held := len(m.byState), len(m.held)
	m.mu.Unlock()
	check(-1)
	if n != 0 || held != 0 {
		t.Fatalf("no task left: %d states counted, %d frameworks held", n, held)
	}
}
