package mesos

import (
	"encoding/json"
	"testing"
)

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

func TestReservations(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		cases := []struct {
			name, in string
			role     string
			dynamic  bool
		}{
			{"refined dynamic", `{"name":"cpus","type":"SCALAR","scalar":{"value":2},"reservations":[{"type":"STATIC","role":"eng"},{"type":"DYNAMIC","role":"eng/web","principal":"ops"}]}`, "eng/web", true},
			{"static", `{"name":"mem","type":"SCALAR","scalar":{"value":64},"reservations":[{"type":"STATIC","role":"prod"}]}`, "prod", false},
			{"deprecated role", `{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"prod"}`, "prod", false},
			{"deprecated dynamic", `{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"ads","reservation":{"principal":"ops"}}`, "ads", true},
			{"deprecated unreserved", `{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"*"}`, "*", false},
			{"unreserved", `{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":1,"end":2}]}}`, "*", false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var r Resource
				if err := json.Unmarshal([]byte(c.in), &r); err != nil {
					t.Fatal(err)
				}
				if r.ReservationRole() != c.role || r.Dynamic() != c.dynamic || r.Reserved() != (c.role != "*") {
					t.Fatalf("role %q dynamic %v reserved %v, want %q %v", r.ReservationRole(), r.Dynamic(), r.Reserved(), c.role, c.dynamic)
				}
				out, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if string(out) != c.in {
					t.Fatalf("round trip:\n got %s\nwant %s", out, c.in)
				}
				// Normalising keeps the reservation.
				if n := (Resources{r}).Normalize(); len(n) != 1 || n[0].ReservationRole() != c.role || len(n[0].Reservations) != len(r.Reservations) {
					t.Fatalf("normalize lost the reservation: %+v", n)
				}
			})
		}
	})
	dyn := func(role, principal string, v float64) Resource {
		r := ScalarResource("cpus", v)
		r.Reservations = []ReservationInfo{{Type: ReservationDynamic, Role: role, Principal: principal}}
		return r
	}
	static := func(role string, v float64) Resource {
		r := ScalarResource("cpus", v)
		r.Reservations = []ReservationInfo{{Type: ReservationStatic, Role: role}}
		return r
	}
	parsed, err := ParseResources("cpus(prod):2;cpus:1;mem(prod):64")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		got  Resources
		want string
	}{
		{"parse keeps roles apart", parsed, "cpus:1;cpus(prod):2;mem(prod):64"},
		{"unreserved part", parsed.Unreserved(), "cpus:1"},
		{"reserved part", parsed.ReservedTo("prod"), "cpus(prod):2;mem(prod):64"},
		{"role-only and static stack add up", Resources{static("prod", 1)}.Plus(parsed), "cpus:1;cpus(prod):3;mem(prod):64"},
		{"static stack subtracts from role-only", parsed.Minus(Resources{static("prod", 2)}), "cpus:1;mem(prod):64"},
		{"dynamic does not subtract from static", parsed.Minus(Resources{dyn("prod", "ops", 2)}), "cpus:1;cpus(prod):2;mem(prod):64"},
		{"dynamic does not subtract from unreserved", Resources{ScalarResource("cpus", 2)}.Minus(Resources{dyn("prod", "ops", 2)}), "cpus:2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.got.String() != c.want {
				t.Fatalf("got %s want %s", c.got, c.want)
			}
		})
	}
	t.Run("both formats of a dynamic reservation add up", func(t *testing.T) {
		old := ScalarResource("cpus", 1)
		old.Role, old.Reservation = "prod", &ReservationInfo{Principal: "ops"}
		rs := Resources{old, dyn("prod", "ops", 2)}.Normalize()
		if len(rs) != 1 || rs.Scalar("cpus") != 3 || !rs[0].Dynamic() {
			t.Fatalf("got %+v", rs)
		}
		if st := old.ReservationStack(); len(st) != 1 || st[0] != (ReservationInfo{Type: ReservationDynamic, Role: "prod", Principal: "ops"}) {
			t.Fatalf("stack %+v", st)
		}
	})
	t.Run("principals stay apart", func(t *testing.T) {
		rs := Resources{dyn("prod", "a", 1), dyn("prod", "b", 1), dyn("prod", "a", 1)}.Normalize()
		if len(rs) != 2 || rs.Scalar("cpus") != 3 {
			t.Fatalf("got %+v", rs)
		}
		if (Resources{dyn("prod", "a", 2)}).Contains(Resources{dyn("prod", "b", 1)}) {
			t.Fatal("a reservation by one principal contains another's")
		}
		if !(Resources{dyn("prod", "a", 2)}).Contains(Resources{dyn("prod", "a", 1)}) {
			t.Fatal("a reservation does not contain less of itself")
		}
		if (Resources{ScalarResource("cpus", 4)}).Contains(Resources{dyn("prod", "a", 1)}) {
			t.Fatal("unreserved contains reserved")
		}
	})
}

func FuzzParseResources(f *testing.F) {
	for _, s := range []string{"cpus:4;mem:8192;ports:[31000-32000]", "cpus(prod):2;cpus:1", "disk(a/b):10;gpus:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseResources(s)
		if err != nil {
			return
		}
		// What parses renders to a fixed point.
		again, err := ParseResources(rs.String())
		if err != nil {
			t.Fatalf("%q renders as %q, which does not parse: %v", s, rs.String(), err)
		}
		if again.String() != rs.String() || !again.Contains(rs) || !rs.Contains(again) {
			t.Fatalf("%q: %q then %q", s, rs.String(), again.String())
		}
	})
}
