package mesos

import "testing"

func TestResourcesArithmetic(t *testing.T) {
	total, err := ParseResources("cpus:4;mem:1024;ports:[31000-31010]")
	if err != nil {
		t.Fatal(err)
	}
	task := Resources{ScalarResource("cpus", 0.1), ScalarResource("mem", 32), RangesResource("ports", Range{31002, 31003})}
	if !total.Contains(task) {
		t.Fatalf("%s should contain %s", total, task)
	}
	left := total.Minus(task)
	if got, want := left.String(), "cpus:3.9;mem:992;ports:[31000-31001, 31004-31010]"; got != want {
		t.Fatalf("minus: got %q want %q", got, want)
	}
	if left.Contains(task) {
		t.Fatalf("%s should not contain %s", left, task)
	}
	back := left.Plus(task)
	if back.String() != total.String() {
		t.Fatalf("plus: got %s want %s", back, total)
	}
	// Scalar noise never leaves crumbs.
	r := Resources{ScalarResource("cpus", 0.3)}
	for i := 0; i < 3; i++ {
		r = r.Minus(Resources{ScalarResource("cpus", 0.1)})
	}
	if !r.Empty() {
		t.Fatalf("want empty, got %s", r)
	}
}

func TestParseResourcesErrors(t *testing.T) {
	for _, in := range []string{"cpus", "cpus:x", "ports:[5-1]", "ports:[1-2", ":3", "mem:-1"} {
		if _, err := ParseResources(in); err == nil {
			t.Errorf("%q: want error", in)
		}
	}
}

func TestPIDs(t *testing.T) {
	if got := IPFromPID(AgentPID("10.1.2.3", 5051)); got != "10.1.2.3" {
		t.Fatalf("got %q", got)
	}
	if IPFromPID("garbage") != "" {
		t.Fatal("want empty")
	}
}

func TestParseAttributes(t *testing.T) {
	as, err := ParseAttributes("rack:r1; level:3")
	if err != nil || len(as) != 2 || as[0].Text.Value != "r1" || as[1].Scalar.Value != 3 {
		t.Fatalf("got %+v %v", as, err)
	}
	if _, err := ParseAttributes("rack"); err == nil {
		t.Fatal("want error")
	}
}
