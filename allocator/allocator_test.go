package allocator

import (
	"fmt"
	"testing"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

func agent(id string, cpus, mem float64) Agent {
	r := mesos.Resources{mesos.ScalarResource("cpus", cpus), mesos.ScalarResource("mem", mem)}
	return Agent{ID: id, Total: r, Available: r}
}

func count(offers []Offer) map[string]int {
	m := map[string]int{}
	for _, o := range offers {
		m[o.FrameworkID]++
	}
	return m
}

func TestAllocate(t *testing.T) {
	now := time.Unix(1000, 0)
	many := func(n int) []Agent {
		var as []Agent
		for i := 0; i < n; i++ {
			as = append(as, agent(fmt.Sprintf("a%02d", i), 4, 4096))
		}
		return as
	}
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
		{"already allocated framework waits", State{Agents: many(4), Frameworks: []Framework{
			{ID: "f1", Allocated: mesos.Resources{mesos.ScalarResource("cpus", 16)}}, {ID: "f2"}}, Now: now},
			map[string]int{"f2": 4}},
		{"weights 2:1 between roles", State{Agents: many(9), Frameworks: []Framework{{ID: "f1", Role: "a"}, {ID: "f2", Role: "b"}},
			Weights: map[string]float64{"a": 2}, Now: now}, map[string]int{"f1": 6, "f2": 3}},
		{"active filter holds agent back", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now.Add(time.Second)}}, Now: now}, map[string]int{}},
		{"expired filter releases agent", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now}}, Now: now}, map[string]int{"f1": 1}},
		{"filter of one framework passes agent to the other", State{Agents: many(1), Frameworks: []Framework{{ID: "f1"}, {ID: "f2", Allocated: mesos.Resources{mesos.ScalarResource("cpus", 1)}}},
			Filters: []Filter{{FrameworkID: "f1", AgentID: "a00", Until: now.Add(time.Second)}}, Now: now}, map[string]int{"f2": 1}},
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

func BenchmarkAllocate(b *testing.B) {
	for _, n := range []struct{ agents, fws int }{{1000, 10}, {10000, 100}, {50000, 1000}} {
		b.Run(fmt.Sprintf("agents=%d/frameworks=%d", n.agents, n.fws), func(b *testing.B) {
			st := State{Now: time.Unix(0, 0)}
			for i := 0; i < n.agents; i++ {
				st.Agents = append(st.Agents, agent(fmt.Sprintf("a%06d", i), 8, 16384))
			}
			for i := 0; i < n.fws; i++ {
				st.Frameworks = append(st.Frameworks, Framework{ID: fmt.Sprintf("f%04d", i), Role: fmt.Sprintf("r%d", i%5)})
			}
			b.ReportAllocs()
			for b.Loop() {
				Allocate(st)
			}
		})
	}
}
