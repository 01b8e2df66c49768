package allocator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

func agent(id string, cpus, mem float64) Agent {
	r := mesos.Resources{mesos.ScalarResource("cpus", cpus), mesos.ScalarResource("mem", mem)}
	return Agent{ID: id, Total: r, Available: r}
}

// agentOf is an agent whose resources are in --resources syntax.
func agentOf(t testing.TB, id, spec string) Agent {
	t.Helper()
	r := parse(t, spec)
	return Agent{ID: id, Total: r, Available: r}
}

func parse(t testing.TB, spec string) mesos.Resources {
	t.Helper()
	r, err := mesos.ParseResources(spec)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func many(n int) []Agent {
	var as []Agent
	for i := 0; i < n; i++ {
		as = append(as, agent(fmt.Sprintf("a%02d", i), 4, 4096))
	}
	return as
}

func count(offers []Offer) map[string]int {
	m := map[string]int{}
	for _, o := range offers {
		m[o.FrameworkID]++
	}
	return m
}

// sum adds up the named scalar offered per framework.
func sum(offers []Offer, name string) map[string]float64 {
	m := map[string]float64{}
	for _, o := range offers {
		m[o.FrameworkID] += o.Resources.Scalar(name)
	}
	return m
}

func TestAllocate(t *testing.T) {
	leakcheck.Check(t)
	now := time.Unix(1000, 0)
	cases := []struct {
		name string
		st   State
		want map[string]int
	}{
		{"no frameworks", State{Agents: many(2), Now: now}, map[string]int{}},
		{"equal split", State{Agents: many(10), Frameworks: []Framework{{ID: "f1"}, {ID: "f2"}}, Now: now},
			map[string]int{"f1": 5, "f2": 5}},
		{"suppressed gets nothing", State{Agents: many(4), Frameworks: []Framework{{ID: "f1"}, {ID: "f2", Suppressed: true}}, Now: now},
			map[string]int{"f1": 4}},
		{"all suppressed: no offers", State{Agents: many(4), Frameworks: []Framework{{ID: "f1", Suppressed: true}, {ID: "f2", Roles: []string{"a", "b"}, Suppressed: true}}, Now: now},
			map[string]int{}},
		{"already allocated framework waits", State{Agents: many(4), Frameworks: []Framework{
			{ID: "f1", Allocated: mesos.Resources{mesos.ScalarResource("cpus", 16)}}, {ID: "f2"}}, Now: now},
			map[string]int{"f2": 4}},
		{"weights 2:1 between roles", State{Agents: many(9), Frameworks: []Framework{{ID: "f1", Role: "a"}, {ID: "f2", Role: "b"}},
			Weights: map[string]float64{"a": 2}, Now: now}, map[string]int{"f1": 6, "f2": 3}},
		{"active filter holds agent back", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now.Add(time.Second)}}, Now: now}, map[string]int{}},
		{"filter holds until the last nanosecond", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now.Add(time.Nanosecond)}}, Now: now}, map[string]int{}},
		{"expired filter releases agent at Until", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now}}, Now: now}, map[string]int{"f1": 1}},
		{"filter of one framework passes agent to the other", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}, {ID: "f2", Allocated: mesos.Resources{mesos.ScalarResource("cpus", 1)}}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now.Add(time.Second)}}, Now: now}, map[string]int{"f2": 1}},
		{"filter of another agent does not hold", State{Agents: many(2), Frameworks: []Framework{{ID: "f1"}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now.Add(time.Second)}}, Now: now}, map[string]int{"f1": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := count(Allocate(c.st))
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

func TestAllocateSkipsEmptyAgents(t *testing.T) {
	a := agent("a", 1, 1)
	a.Available = nil
	if got := Allocate(State{Agents: []Agent{a}, Frameworks: []Framework{{ID: "f"}}}); len(got) != 0 {
		t.Fatalf("offered an empty agent: %v", got)
	}
}

// simulate runs allocation cycles in which each offer's framework launches
// one task of its demand when the offer holds it and declines the rest; a
// framework whose task does not fit any more suppresses. It returns the
// tasks launched per framework and the final frameworks.
func simulate(t *testing.T, st State, demand map[string]mesos.Resources) (map[string]int, []Framework) {
	t.Helper()
	tasks := map[string]int{}
	fws := append([]Framework(nil), st.Frameworks...)
	for round := 0; ; round++ {
		if round > 10000 {
			t.Fatal("simulation does not converge")
		}
		st.Frameworks = fws
		offers := Allocate(st)
		if len(offers) == 0 {
			return tasks, fws
		}
		// Only the first decision counts: it is the one DRF made with
		// the current shares.
		o := offers[0]
		var f *Framework
		for i := range fws {
			if fws[i].ID == o.FrameworkID {
				f = &fws[i]
			}
		}
		d := demand[f.ID]
		if !o.Resources.Contains(d) {
			f.Suppressed = true
			continue
		}
		tasks[f.ID]++
		if f.AllocatedByRole == nil {
			f.AllocatedByRole = map[string]mesos.Resources{}
		}
		f.AllocatedByRole[o.Role] = f.AllocatedByRole[o.Role].Plus(d)
		agents := append([]Agent(nil), st.Agents...)
		for i := range agents {
			if agents[i].ID == o.AgentID {
				agents[i].Available = agents[i].Available.Minus(d)
			}
		}
		st.Agents = agents
	}
}

func TestDRFConvergence(t *testing.T) {
	cases := []struct {
		name   string
		agents []Agent
		fws    []Framework
		w      map[string]float64
		demand map[string]mesos.Resources
		want   map[string]int
	}{
		// The example of the DRF paper: 9 CPUs, 18 GB; A runs <1 CPU,
		// 4 GB> tasks, B <3 CPUs, 1 GB>. DRF gives A 3 tasks and B 2,
		// both at a dominant share of 2/3.
		{"paper example", []Agent{agent("a0", 9, 18)}, []Framework{{ID: "A"}, {ID: "B"}}, nil,
			map[string]mesos.Resources{"A": {mesos.ScalarResource("cpus", 1), mesos.ScalarResource("mem", 4)},
				"B": {mesos.ScalarResource("cpus", 3), mesos.ScalarResource("mem", 1)}},
			map[string]int{"A": 3, "B": 2}},
		{"weights 2:1 converge to 2:1", []Agent{agent("a0", 30, 30)}, []Framework{{ID: "A", Role: "a"}, {ID: "B", Role: "b"}},
			map[string]float64{"a": 2},
			map[string]mesos.Resources{"A": {mesos.ScalarResource("cpus", 1)}, "B": {mesos.ScalarResource("cpus", 1)}},
			map[string]int{"A": 20, "B": 10}},
		{"hierarchy a/x, a/y, b", []Agent{agent("a0", 40, 40)},
			[]Framework{{ID: "X", Role: "a/x"}, {ID: "Y", Role: "a/y"}, {ID: "B", Role: "b"}}, nil,
			map[string]mesos.Resources{"X": {mesos.ScalarResource("cpus", 1)}, "Y": {mesos.ScalarResource("cpus", 1)}, "B": {mesos.ScalarResource("cpus", 1)}},
			map[string]int{"B": 20, "X": 10, "Y": 10}},
		{"multi-role framework competes in each role", []Agent{agent("a0", 40, 40)},
			[]Framework{{ID: "M", Roles: []string{"a", "b"}}, {ID: "B", Role: "b"}}, nil,
			map[string]mesos.Resources{"M": {mesos.ScalarResource("cpus", 1)}, "B": {mesos.ScalarResource("cpus", 1)}},
			// a gets half, b's half is split between M and B.
			map[string]int{"M": 30, "B": 10}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, fws := simulate(t, State{Agents: c.agents, Frameworks: c.fws, Weights: c.w}, c.demand)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("tasks: got %v want %v", got, c.want)
			}
			if c.name == "paper example" {
				for _, f := range fws {
					var r mesos.Resources
					for _, v := range f.AllocatedByRole {
						r = r.Plus(v)
					}
					if s := math.Max(r.Scalar("cpus")/9, r.Scalar("mem")/18); math.Abs(s-2.0/3) > 1e-9 {
						t.Errorf("%s: dominant share %v, want 2/3", f.ID, s)
					}
				}
			}
		})
	}
}

func TestHierarchicalShares(t *testing.T) {
	cases := []struct {
		name string
		st   State
		want map[string]int
	}{
		{"a's subtree and b equal, x and y split a's half",
			State{Agents: many(12), Frameworks: []Framework{{ID: "fx", Role: "a/x"}, {ID: "fy", Role: "a/y"}, {ID: "fb", Role: "b"}}},
			map[string]int{"fb": 6, "fx": 3, "fy": 3}},
		{"weight inside a subtree counts among siblings only",
			State{Agents: many(16), Frameworks: []Framework{{ID: "fx", Role: "a/x"}, {ID: "fy", Role: "a/y"}, {ID: "fb", Role: "b"}},
				Weights: map[string]float64{"a/x": 3}},
			map[string]int{"fb": 8, "fx": 6, "fy": 2}},
		{"a role's own frameworks compete as one child",
			State{Agents: many(12), Frameworks: []Framework{{ID: "fa1", Role: "a"}, {ID: "fa2", Role: "a"}, {ID: "fx", Role: "a/x"}, {ID: "fb", Role: "b"}}},
			map[string]int{"fb": 6, "fx": 3, "fa1": 2, "fa2": 1}},
		{"deep allocation counts for every ancestor",
			State{Agents: many(4), Frameworks: []Framework{
				{ID: "fx", Role: "a/x/deep", Allocated: mesos.Resources{mesos.ScalarResource("cpus", 16)}}, {ID: "fy", Role: "a/y"}, {ID: "fb", Role: "b"}}},
			map[string]int{"fb": 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := count(Allocate(c.st))
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

func TestMultiRole(t *testing.T) {
	st := State{Agents: many(4), Frameworks: []Framework{{ID: "m", Roles: []string{"a", "b"},
		AllocatedByRole: map[string]mesos.Resources{"a": {mesos.ScalarResource("cpus", 8)}}}}}
	offers := Allocate(st)
	roles := map[string]int{}
	for _, o := range offers {
		if o.FrameworkID != "m" {
			t.Fatalf("offer to %s", o.FrameworkID)
		}
		roles[o.Role]++
	}
	// a already holds 8 of 16 CPUs: b catches up first, then they alternate.
	if want := map[string]int{"a": 1, "b": 3}; fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Fatalf("offers per role %v, want %v", roles, want)
	}
	t.Run("suppressed in one role only", func(t *testing.T) {
		st := st
		st.Frameworks = []Framework{{ID: "m", Roles: []string{"a", "b"}, SuppressedRoles: []string{"b"}}}
		offers := Allocate(st)
		if len(offers) != 4 {
			t.Fatalf("want all 4 agents in role a, got %v", offers)
		}
		for _, o := range offers {
			if o.Role != "a" {
				t.Fatalf("offer in suppressed role: %v", o)
			}
		}
	})
	t.Run("filter in one role only", func(t *testing.T) {
		st := st
		st.Filters = []Filter{{FrameworkID: "m", AgentID: "a00", Role: "b", Until: time.Unix(10, 0)}}
		st.Now = time.Unix(5, 0)
		for _, o := range Allocate(st) {
			if o.AgentID == "a00" && o.Role != "a" {
				t.Fatalf("a00 offered in role %s despite the filter", o.Role)
			}
		}
	})
}

func TestQuotaGuarantee(t *testing.T) {
	cpus := func(v float64) mesos.Resources { return mesos.Resources{mesos.ScalarResource("cpus", v)} }
	cases := []struct {
		name string
		st   State
		want map[string]float64 // CPUs offered
	}{
		{"guarantee met before fair share",
			// q already holds 8 CPUs, so fair share alone would give b
			// three agents out of four; q's guarantee of 16 needs two.
			State{Agents: many(4), Frameworks: []Framework{{ID: "fq", Role: "q", Allocated: cpus(8)}, {ID: "fb", Role: "b"}},
				Quota: map[string]Quota{"q": {Guarantees: cpus(16)}}},
			map[string]float64{"fq": 8, "fb": 8}},
		{"without quota, fair share only",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fq", Role: "q", Allocated: cpus(8)}, {ID: "fb", Role: "b"}}},
			map[string]float64{"fq": 4, "fb": 12}},
		{"guarantee cut to what is missing, rest of the agent to others",
			State{Agents: many(1), Frameworks: []Framework{{ID: "fq", Role: "q", Allocated: cpus(8)}, {ID: "fb", Role: "b"}},
				Quota: map[string]Quota{"q": {Guarantees: cpus(9)}}},
			map[string]float64{"fq": 1, "fb": 3}},
		{"headroom held for a role without frameworks",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fb", Role: "b"}},
				Quota: map[string]Quota{"q": {Guarantees: cpus(8)}}},
			map[string]float64{"fb": 8}},
		{"headroom held for a suppressed role",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fb", Role: "b"}, {ID: "fq", Role: "q", Suppressed: true}},
				Quota: map[string]Quota{"q": {Guarantees: cpus(6)}}},
			map[string]float64{"fb": 10}},
		// Phase 1 fills a/x up to its own guarantee (4 missing); a/y has
		// none. The 4 CPUs a still misses stay held for a's subtree, and
		// a/y, with the lower share, gets them in the fair-share phase.
		{"guarantee of a sub-role",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fx", Role: "a/x", Allocated: cpus(8)}, {ID: "fy", Role: "a/y"}, {ID: "fb", Role: "b"}},
				Quota: map[string]Quota{"a": {Guarantees: cpus(16)}, "a/x": {Guarantees: cpus(12)}}},
			map[string]float64{"fx": 4, "fy": 4, "fb": 8}},
		{"sub-role guarantee never exceeds its parent's",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fx", Role: "a/x", Allocated: cpus(8)}, {ID: "fb", Role: "b"}},
				Quota: map[string]Quota{"a": {Guarantees: cpus(10)}, "a/x": {Guarantees: cpus(16)}}},
			// Phase 1 gives fx 2 CPUs of a00 (what a misses, not the 8
			// a/x would like); b takes the other 2 and two agents, and
			// a wins the last on the tie of equal shares.
			map[string]float64{"fx": 6, "fb": 10}},
		{"unallocated reservations count as consumption",
			State{Agents: []Agent{agentOf(t, "r", "cpus(q):4;mem(q):4096"), agent("a01", 4, 4096), agent("a02", 4, 4096)},
				Frameworks: []Framework{{ID: "fb", Role: "b"}},
				Quota:      map[string]Quota{"q": {Guarantees: cpus(4)}}},
			map[string]float64{"fb": 8}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := sum(Allocate(c.st), "cpus")
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

func TestQuotaLimit(t *testing.T) {
	cpus := func(v float64) mesos.Resources { return mesos.Resources{mesos.ScalarResource("cpus", v)} }
	cases := []struct {
		name string
		st   State
		want map[string]float64 // CPUs offered
	}{
		{"limit cuts the offer down",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fb", Role: "b"}}, Quota: map[string]Quota{"b": {Limits: cpus(6)}}},
			map[string]float64{"fb": 6}},
		{"limit counts what is allocated",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fb", Role: "b", Allocated: cpus(5)}}, Quota: map[string]Quota{"b": {Limits: cpus(6)}}},
			map[string]float64{"fb": 1}},
		{"role at its limit is skipped",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fb", Role: "b", Allocated: cpus(6)}, {ID: "fc", Role: "c", Allocated: cpus(100)}},
				Quota: map[string]Quota{"b": {Limits: cpus(6)}}},
			map[string]float64{"fc": 16}},
		{"limit of a parent bounds its subtree",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fx", Role: "a/x"}, {ID: "fy", Role: "a/y"}},
				Quota: map[string]Quota{"a": {Limits: cpus(5)}}},
			map[string]float64{"fx": 4, "fy": 1}},
		{"limit with guarantee",
			State{Agents: many(4), Frameworks: []Framework{{ID: "fq", Role: "q"}}, Quota: map[string]Quota{"q": {Guarantees: cpus(2), Limits: cpus(3)}}},
			map[string]float64{"fq": 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			offers := Allocate(c.st)
			got := sum(offers, "cpus")
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("got %v want %v (%v)", got, c.want, offers)
			}
			for _, o := range offers {
				if o.Resources.Scalar("mem") != 4096 && o.Resources.Scalar("cpus") > 0 {
					t.Errorf("offer %v: a CPU limit must not cut memory", o)
				}
			}
		})
	}
}

func TestReservedOnlyToRole(t *testing.T) {
	dyn, err := Reserve(parse(t, "cpus:4;mem:4096;ports:[31000-31009]"), "eng", "ops", parse(t, "cpus:2;mem:1024;ports:[31000-31004]"))
	if err != nil {
		t.Fatal(err)
	}
	agents := []Agent{
		agentOf(t, "a0", "cpus(prod):2;mem(prod):2048;cpus:2;mem:2048"),
		agentOf(t, "a1", "cpus(prod):4;mem(prod):4096"),
		{ID: "a2", Total: dyn, Available: dyn},
		agentOf(t, "a3", "cpus:4;mem:4096"),
	}
	st := State{Agents: agents, Frameworks: []Framework{
		{ID: "dev", Role: "dev"}, {ID: "prod", Role: "prod"}, {ID: "web", Role: "eng/web"}, {ID: "any"},
	}}
	offers := Allocate(st)
	got := map[string]mesos.Resources{}
	for _, o := range offers {
		for _, r := range o.Resources {
			if rr := r.ReservationRole(); rr != "*" && !within(rr, o.Role) {
				t.Errorf("%s reserved to %s offered to %s in role %s", r.Name, rr, o.FrameworkID, o.Role)
			}
		}
		got[o.FrameworkID] = got[o.FrameworkID].Plus(o.Resources)
	}
	if r := got["prod"].ReservedTo("prod"); r.Scalar("cpus") != 6 {
		t.Errorf("prod got %s of its reservations, want 6 CPUs", r)
	}
	if r := got["web"].ReservedTo("eng"); r.Scalar("cpus") != 2 || len(r.Ranges("ports")) == 0 {
		t.Errorf("eng/web got %s of eng's reservation, want 2 CPUs and ports", r)
	}
	// Every resource went somewhere, nothing twice.
	var all, offered mesos.Resources
	for _, a := range agents {
		all = all.Plus(a.Available)
	}
	for _, r := range got {
		offered = offered.Plus(r)
	}
	if all.String() != offered.String() || !all.Contains(offered) || !offered.Contains(all) {
		t.Errorf("offered %s, have %s", offered, all)
	}
	t.Run("suppressed owner leaves reservation unoffered", func(t *testing.T) {
		st := State{Agents: agents[1:2], Frameworks: []Framework{{ID: "prod", Role: "prod", Suppressed: true}, {ID: "dev", Role: "dev"}}}
		if offers := Allocate(st); len(offers) != 0 {
			t.Fatalf("want no offers, got %v", offers)
		}
	})
}

// TestInvariants checks on random states what must hold whatever the
// shares: offers never exceed what an agent has, reserved resources go
// only to their subtree, unreserved offers keep every subtree within its
// limits, suppressed and filtered frameworks get nothing, one offer per
// framework, agent and role, and the same state gives the same offers.
func TestInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	roles := []string{"a", "a/x", "a/y", "b", "b/z/w", "*"}
	for iter := 0; iter < 300; iter++ {
		now := time.Unix(100, 0)
		st := State{Now: now, Quota: map[string]Quota{}, Weights: map[string]float64{}}
		for i := 0; i < 1+rng.IntN(8); i++ {
			spec := fmt.Sprintf("cpus:%d;mem:%d;ports:[%d-%d]", rng.IntN(8), 1024*rng.IntN(8), 31000, 31000+rng.IntN(10))
			if rng.IntN(2) == 0 {
				r := roles[rng.IntN(len(roles)-1)]
				spec += fmt.Sprintf(";cpus(%s):%d;mem(%s):%d", r, 1+rng.IntN(4), r, 512*rng.IntN(4))
			}
			st.Agents = append(st.Agents, agentOf(t, fmt.Sprintf("a%d", i), spec))
		}
		for i := 0; i < 1+rng.IntN(6); i++ {
			f := Framework{ID: fmt.Sprintf("f%d", i), Suppressed: rng.IntN(6) == 0}
			f.Roles = []string{roles[rng.IntN(len(roles))]}
			if rng.IntN(3) == 0 {
				f.Roles = append(f.Roles, roles[rng.IntN(len(roles))])
			}
			f.AllocatedByRole = map[string]mesos.Resources{f.Roles[0]: {mesos.ScalarResource("cpus", float64(rng.IntN(6)))}}
			st.Frameworks = append(st.Frameworks, f)
			if rng.IntN(4) == 0 {
				st.Filters = append(st.Filters, Filter{FrameworkID: f.ID, AgentID: fmt.Sprintf("a%d", rng.IntN(8)), Until: now.Add(time.Second)})
			}
		}
		for _, r := range roles[:5] {
			switch rng.IntN(4) {
			case 0:
				st.Quota[r] = Quota{Limits: mesos.Resources{mesos.ScalarResource("cpus", float64(rng.IntN(10)))}}
			case 1:
				st.Quota[r] = Quota{Guarantees: mesos.Resources{mesos.ScalarResource("cpus", float64(rng.IntN(10)))},
					Limits: mesos.Resources{mesos.ScalarResource("cpus", float64(10+rng.IntN(10)))}}
			case 2:
				st.Weights[r] = float64(1 + rng.IntN(3))
			}
		}
		before := fmt.Sprint(st)
		offers := Allocate(st)
		if after := fmt.Sprint(st); after != before {
			t.Fatalf("Allocate changed its input:\n%s\n%s", before, after)
		}
		checkInvariants(t, st, offers)
		if again := Allocate(st); fmt.Sprint(again) != fmt.Sprint(offers) {
			t.Errorf("not deterministic:\n%v\n%v", offers, again)
		}
		if t.Failed() {
			t.Fatalf("iteration %d: state %+v\noffers %v", iter, st, offers)
		}
	}
}

func checkInvariants(t *testing.T, st State, offers []Offer) {
	t.Helper()
	perAgent := map[string]mesos.Resources{}
	seen := map[[3]string]bool{}
	// consumption per role before the cycle, and offered unreserved cpus.
	consumed := map[string]float64{}
	fws := map[string]Framework{}
	for _, f := range st.Frameworks {
		fws[f.ID] = f
		for role, r := range f.AllocatedByRole {
			consumed[role] += r.Scalar("cpus")
		}
	}
	for _, a := range st.Agents {
		for _, r := range a.Available {
			if r.Reserved() && r.Name == "cpus" && r.Scalar != nil {
				consumed[r.ReservationRole()] += r.Scalar.Value
			}
		}
	}
	subtree := func(m map[string]float64, role string) float64 {
		var v float64
		for r, x := range m {
			if within(role, r) {
				v += x
			}
		}
		return v
	}
	extra := map[string]float64{}
	for _, o := range offers {
		k := [3]string{o.FrameworkID, o.AgentID, o.Role}
		if seen[k] {
			t.Errorf("two offers for %v", k)
		}
		seen[k] = true
		f := fws[o.FrameworkID]
		if f.Suppressed {
			t.Errorf("offer to suppressed %s", f.ID)
		}
		for _, fl := range st.Filters {
			if fl.FrameworkID == f.ID && fl.AgentID == o.AgentID && st.Now.Before(fl.Until) {
				t.Errorf("offer of filtered %s to %s", o.AgentID, f.ID)
			}
		}
		if o.Resources.Empty() {
			t.Errorf("empty offer %v", o)
		}
		perAgent[o.AgentID] = perAgent[o.AgentID].Plus(o.Resources)
		for _, r := range o.Resources {
			if rr := r.ReservationRole(); rr != "*" && !within(rr, o.Role) {
				t.Errorf("%s reserved to %s offered in role %s", r.Name, rr, o.Role)
			}
			if !r.Reserved() && r.Scalar != nil && r.Name == "cpus" {
				extra[o.Role] += r.Scalar.Value
			}
		}
	}
	for _, a := range st.Agents {
		if got := perAgent[a.ID]; !a.Available.Contains(got) {
			t.Errorf("agent %s: offered %s of %s", a.ID, got, a.Available)
		}
	}
	for role, q := range st.Quota {
		lim := q.Limits.Scalar("cpus")
		if len(q.Limits) == 0 {
			continue
		}
		before := subtree(consumed, role)
		if add := subtree(extra, role); add > 0 && before+add > lim+1e-9 {
			t.Errorf("role %s: consumed %v + offered %v > limit %v", role, before, add, lim)
		}
	}
}

func BenchmarkAllocate(b *testing.B) {
	for _, n := range []struct {
		agents, fws int
		quota       bool
	}{{1000, 10, false}, {10000, 100, false}, {10000, 100, true}, {50000, 1000, false}} {
		name := fmt.Sprintf("agents=%d/frameworks=%d", n.agents, n.fws)
		if n.quota {
			name += "/roles+quota"
		}
		b.Run(name, func(b *testing.B) {
			st := State{Now: time.Unix(0, 0)}
			for i := 0; i < n.agents; i++ {
				a := agent(fmt.Sprintf("a%06d", i), 8, 16384)
				if n.quota && i%10 == 0 {
					r := mesos.Resources{mesos.ScalarResource("cpus", 4), mesos.ScalarResource("mem", 8192),
						{Name: "cpus", Type: mesos.TypeScalar, Scalar: &mesos.Scalar{Value: 4}, Role: "eng/web"},
						{Name: "mem", Type: mesos.TypeScalar, Scalar: &mesos.Scalar{Value: 8192}, Role: "eng/web"}}
					a.Total, a.Available = r, r
				}
				st.Agents = append(st.Agents, a)
			}
			for i := 0; i < n.fws; i++ {
				role := fmt.Sprintf("r%d", i%5)
				if n.quota {
					role = []string{"eng/web", "eng/api", "eng/batch/x", "ops", "research"}[i%5]
				}
				st.Frameworks = append(st.Frameworks, Framework{ID: fmt.Sprintf("f%04d", i), Role: role})
			}
			if n.quota {
				cpus := func(v float64) mesos.Resources { return mesos.Resources{mesos.ScalarResource("cpus", v)} }
				st.Quota = map[string]Quota{
					"eng":      {Guarantees: cpus(20000), Limits: cpus(50000)},
					"eng/web":  {Guarantees: cpus(8000)},
					"ops":      {Limits: cpus(4000)},
					"research": {Guarantees: cpus(5000)},
				}
				st.Weights = map[string]float64{"eng": 2, "eng/api": 3}
			}
			b.ReportAllocs()
			for b.Loop() {
				Allocate(st)
			}
		})
	}
}
