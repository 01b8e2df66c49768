package mesos

import "testing"

// benchShapes returns the shapes the master's arithmetic sees most: an
// agent's total (cpus, mem, disk and two port ranges) and a task's ask
// (cpus, mem and one port), unreserved or with part of them reserved
// dynamically to a role.
func benchShapes(reserved bool) (agent, task Resources) {
	agent = Resources{
		ScalarResource("cpus", 8),
		ScalarResource("mem", 16384),
		ScalarResource("disk", 100000),
		RangesResource("ports", Range{31000, 31999}, Range{32100, 32999}),
	}
	task = Resources{
		ScalarResource("cpus", 0.5),
		ScalarResource("mem", 256),
		RangesResource("ports", Range{31005, 31005}),
	}
	if !reserved {
		return agent, task
	}
	stack := []ReservationInfo{{Type: ReservationDynamic, Role: "prod", Principal: "ops"}}
	cpus, mem := ScalarResource("cpus", 4), ScalarResource("mem", 4096)
	cpus.Reservations, mem.Reservations = stack, stack
	agent = append(agent, cpus, mem).Normalize()
	tcpus, tmem := ScalarResource("cpus", 0.5), ScalarResource("mem", 256)
	tcpus.Reservations, tmem.Reservations = stack, stack
	task = Resources{tcpus, tmem, RangesResource("ports", Range{31005, 31005})}
	return agent, task
}

// benchSink keeps the compiler from discarding the results.
var benchSink struct {
	rs Resources
	ok bool
}

func benchBoth(b *testing.B, f func(b *testing.B, agent, task Resources)) {
	for _, c := range []struct {
		name     string
		reserved bool
	}{{"unreserved", false}, {"reserved", true}} {
		b.Run(c.name, func(b *testing.B) {
			agent, task := benchShapes(c.reserved)
			b.ReportAllocs()
			f(b, agent, task)
		})
	}
}

func BenchmarkResourcesPlus(b *testing.B) {
	benchBoth(b, func(b *testing.B, agent, task Resources) {
		left := agent.Minus(task)
		for b.Loop() {
			benchSink.rs = left.Plus(task)
		}
	})
}

func BenchmarkResourcesMinus(b *testing.B) {
	benchBoth(b, func(b *testing.B, agent, task Resources) {
		for b.Loop() {
			benchSink.rs = agent.Minus(task)
		}
	})
}

func BenchmarkResourcesContains(b *testing.B) {
	benchBoth(b, func(b *testing.B, agent, task Resources) {
		for b.Loop() {
			benchSink.ok = agent.Contains(task)
		}
	})
}

func BenchmarkResourcesNormalize(b *testing.B) {
	benchBoth(b, func(b *testing.B, agent, task Resources) {
		// An unnormalised list: the agent's total followed by a task.
		mixed := append(append(Resources{}, agent...), task...)
		for b.Loop() {
			benchSink.rs = mixed.Normalize()
		}
	})
}

func BenchmarkResourcesEmpty(b *testing.B) {
	benchBoth(b, func(b *testing.B, agent, task Resources) {
		for b.Loop() {
			benchSink.ok = agent.Empty()
		}
	})
}
