package allocator

import (
	"errors"
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

func TestReserve(t *testing.T) {
	offer := parse(t, "cpus:4;mem:1024;ports:[31000-31009];cpus(eng):2")
	cases := []struct {
		name, role string
		want       string // resources to reserve, --resources syntax
		err        error
		after      string // String() of the result
		reserved   string // String() of the result's part reserved to role
	}{
		{"unreserved", "prod", "cpus:1;mem:256;ports:[31000-31001]", nil,
			"cpus:3;cpus(eng):2;cpus(prod):1;mem:768;mem(prod):256;ports:[31002-31009];ports(prod):[31000-31001]",
			"cpus(prod):1;mem(prod):256;ports(prod):[31000-31001]"},
		{"refine a parent's reservation", "eng/web", "cpus(eng):2", nil,
			"cpus:4;cpus(eng/web):2;mem:1024;ports:[31000-31009]", "cpus(eng/web):2"},
		{"more than the offer holds", "prod", "cpus:5", ErrInsufficientResources, "", ""},
		{"ports not in the offer", "prod", "ports:[30000-30001]", ErrInsufficientResources, "", ""},
		{"reserved to another role is not unreserved", "prod", "cpus(eng):1", ErrInvalidRole, "", ""},
		{"refinement must go down", "eng", "cpus(eng):1", ErrInvalidRole, "", ""},
		{"star", "*", "cpus:1", ErrInvalidRole, "", ""},
		{"bad role", "a//b", "cpus:1", ErrInvalidRole, "", ""},
		{"dot role", "a/..", "cpus:1", ErrInvalidRole, "", ""},
		{"nothing", "prod", "", ErrNoResources, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Reserve(offer, c.role, "ops", parse(t, c.want))
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			if got.String() != c.after {
				t.Fatalf("got %s\nwant %s", got, c.after)
			}
			r := got.ReservedTo(c.role)
			if r.String() != c.reserved {
				t.Fatalf("reserved %s, want %s", r, c.reserved)
			}
			for _, x := range r {
				if !x.Dynamic() || x.Reservations[len(x.Reservations)-1].Principal != "ops" {
					t.Fatalf("%+v: want a dynamic reservation by ops", x)
				}
			}
			if offer.String() != "cpus:4;cpus(eng):2;mem:1024;ports:[31000-31009]" {
				t.Fatalf("Reserve changed its input: %s", offer)
			}
		})
	}
}

func TestUnreserve(t *testing.T) {
	base := parse(t, "cpus:4;mem:1024;ports:[31000-31009];cpus(static):2;cpus(eng):2")
	res, err := Reserve(base, "prod", "ops", parse(t, "cpus:2;mem:512;ports:[31000-31004]"))
	if err != nil {
		t.Fatal(err)
	}
	res, err = Reserve(res, "eng/web", "ops", parse(t, "cpus(eng):1"))
	if err != nil {
		t.Fatal(err)
	}
	exact := res.ReservedTo("prod")
	cases := []struct {
		name, role string
		want       mesos.Resources
		err        error
		after      string
	}{
		{"exactly what is reserved", "prod", exact, nil,
			"cpus:4;cpus(eng):1;cpus(eng/web):1;cpus(static):2;mem:1024;ports:[31000-31009]"},
		{"plain amounts", "prod", parse(t, "cpus:1;ports:[31001-31002]"), nil,
			"cpus:3;cpus(eng):1;cpus(eng/web):1;cpus(prod):1;cpus(static):2;mem:512;mem(prod):512;ports:[31001-31002, 31005-31009];ports(prod):[31000-31000, 31003-31004]"},
		{"refinement goes back to the parent", "eng/web", parse(t, "cpus:1"), nil,
			"cpus:2;cpus(eng):2;cpus(prod):2;cpus(static):2;mem:512;mem(prod):512;ports:[31005-31009];ports(prod):[31000-31004]"},
		{"more than reserved", "prod", parse(t, "cpus:3"), ErrNotReserved, ""},
		{"ports not reserved", "prod", parse(t, "ports:[31005-31005]"), ErrNotReserved, ""},
		{"another role's", "dev", parse(t, "cpus:1"), ErrNotReserved, ""},
		{"reserved to another role", "prod", res.ReservedTo("eng/web"), ErrNotReserved, ""},
		{"static by amount", "static", parse(t, "cpus:1"), ErrStaticReservation, ""},
		{"static exactly", "static", parse(t, "cpus(static):1"), ErrStaticReservation, ""},
		{"nothing", "prod", nil, ErrNoResources, ""},
		{"bad role", "", parse(t, "cpus:1"), ErrInvalidRole, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Unreserve(res, c.role, c.want)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			if err != nil {
				return
			}
			if got.String() != c.after {
				t.Fatalf("got %s\nwant %s", got, c.after)
			}
			if got.Scalar("cpus") != res.Scalar("cpus") || got.Scalar("mem") != res.Scalar("mem") {
				t.Fatalf("unreserve changed the amounts: %s -> %s", res, got)
			}
		})
	}
	t.Run("pre-refinement format", func(t *testing.T) {
		old := mesos.ScalarResource("cpus", 2)
		old.Role, old.Reservation = "ads", &mesos.ReservationInfo{Principal: "ops"}
		got, err := Unreserve(mesos.Resources{old, mesos.ScalarResource("cpus", 1)}, "ads", parse(t, "cpus:1"))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != "cpus:2;cpus(ads):1" || got.Unreserved().Scalar("cpus") != 2 {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("reserve then unreserve is the identity", func(t *testing.T) {
		want := parse(t, "cpus:2;mem:512;ports:[31000-31004]")
		r, err := Reserve(base, "prod", "ops", want)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unreserve(r, "prod", want)
		if err != nil {
			t.Fatal(err)
		}
		if back.String() != base.String() || !back.Contains(base) || !base.Contains(back) {
			t.Fatalf("got %s want %s", back, base)
		}
	})
}

func TestValidRole(t *testing.T) {
	for _, c := range []struct {
		role string
		ok   bool
	}{{"*", true}, {"prod", true}, {"eng/web", true}, {"a.b", true}, {"", false}, {"/a", false}, {"a/", false},
		{"a//b", false}, {".", false}, {"a/..", false}, {"-a", false}, {"a b", false}, {"a/*", false}} {
		if err := ValidRole(c.role); (err == nil) != c.ok {
			t.Errorf("%q: %v", c.role, err)
		}
	}
}
