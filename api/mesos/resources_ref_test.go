package mesos

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// This file keeps the map-based arithmetic that resources.go had before
// its entries moved to small slices, as the reference the differential
// test below holds the current code to. It is a frozen copy: change it
// only together with a deliberate change of semantics.

type refResKey struct{ name, role, resv string }

func refKeyOf(r Resource) refResKey {
	k := refResKey{name: r.Name, role: r.ReservationRole()}
	if len(r.Reservations) == 0 && (r.Reservation == nil || !r.Reserved()) {
		return k
	}
	rv := r.ReservationStack()
	if len(rv) == 1 && (rv[0].Type == "" || rv[0].Type == ReservationStatic) && rv[0].Principal == "" {
		return k
	}
	var b strings.Builder
	for _, x := range rv {
		b.WriteString(x.Type)
		b.WriteByte(0)
		b.WriteString(x.Role)
		b.WriteByte(0)
		b.WriteString(x.Principal)
		b.WriteByte(1)
	}
	k.resv = b.String()
	return k
}

func refCollect(rs Resources) (map[refResKey]float64, map[refResKey][]Range, []refResKey, map[refResKey]Resource) {
	scalars := map[refResKey]float64{}
	ranges := map[refResKey][]Range{}
	reps := map[refResKey]Resource{}
	var order []refResKey
	for _, r := range rs {
		k := refKeyOf(r)
		_, s := scalars[k]
		_, g := ranges[k]
		if !s && !g {
			order = append(order, k)
			reps[k] = r
		}
		switch r.Type {
		case TypeRanges:
			if r.Ranges != nil {
				ranges[k] = append(ranges[k], r.Ranges.Range...)
			} else if !g {
				ranges[k] = nil
			}
		default:
			if r.Scalar != nil {
				scalars[k] += r.Scalar.Value
			} else if !s {
				scalars[k] += 0
			}
		}
	}
	return scalars, ranges, order, reps
}

func refBuild(scalars map[refResKey]float64, ranges map[refResKey][]Range, order []refResKey, reps map[refResKey]Resource) Resources {
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].name != order[j].name {
			return order[i].name < order[j].name
		}
		if order[i].role != order[j].role {
			return order[i].role < order[j].role
		}
		return order[i].resv < order[j].resv
	})
	out := make(Resources, 0, len(order))
	for _, k := range order {
		rep := reps[k]
		role := rep.Role
		if role == "*" {
			role = ""
		}
		if v, ok := scalars[k]; ok {
			v = roundScalar(v)
			if v > epsilon {
				out = append(out, Resource{Name: k.name, Type: TypeScalar, Scalar: &Scalar{Value: v}, Role: role, Reservation: rep.Reservation, Reservations: rep.Reservations})
			}
			continue
		}
		if rs := refMergeRanges(ranges[k]); len(rs) > 0 {
			out = append(out, Resource{Name: k.name, Type: TypeRanges, Ranges: &RangeSet{Range: rs}, Role: role, Reservation: rep.Reservation, Reservations: rep.Reservations})
		}
	}
	return out
}

func refNormalize(rs Resources) Resources { return refBuild(refCollect(rs)) }

func refUnreserved(rs Resources) Resources {
	var out Resources
	for _, r := range rs {
		if !r.Reserved() {
			out = append(out, r)
		}
	}
	return refNormalize(out)
}

func refReservedTo(rs Resources, role string) Resources {
	var out Resources
	for _, r := range rs {
		if r.Reserved() && r.ReservationRole() == role {
			out = append(out, r)
		}
	}
	return refNormalize(out)
}

func refPlus(rs, other Resources) Resources {
	return refNormalize(append(append(Resources{}, rs...), other...))
}

func refMinus(rs, other Resources) Resources {
	s, g, order, reps := refCollect(rs)
	os, og, _, _ := refCollect(other)
	for k, v := range os {
		if _, ok := s[k]; ok {
			s[k] -= v
		}
	}
	for k, v := range og {
		if cur, ok := g[k]; ok {
			g[k] = refSubtractRanges(refMergeRanges(cur), refMergeRanges(v))
		}
	}
	return refBuild(s, g, order, reps)
}

func refContains(rs, other Resources) bool {
	s, g, _, _ := refCollect(rs)
	os, og, _, _ := refCollect(other)
	for k, v := range os {
		if v > epsilon && s[k]+epsilon < v {
			return false
		}
	}
	for k, v := range og {
		have := refMergeRanges(g[k])
		for _, want := range refMergeRanges(v) {
			if !refRangeCovered(have, want) {
				return false
			}
		}
	}
	return true
}

func refScalar(rs Resources, name string) float64 {
	var v float64
	for _, r := range rs {
		if r.Name == name && r.Scalar != nil {
			v += r.Scalar.Value
		}
	}
	return roundScalar(v)
}

func refRanges(rs Resources, name string) []Range {
	var out []Range
	for _, r := range rs {
		if r.Name == name && r.Ranges != nil {
			out = append(out, r.Ranges.Range...)
		}
	}
	return refMergeRanges(out)
}

func refEmpty(rs Resources) bool { return len(refNormalize(rs)) == 0 }

func refMergeRanges(rs []Range) []Range {
	if len(rs) == 0 {
		return nil
	}
	s := append([]Range(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].Begin < s[j].Begin })
	out := s[:1]
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if r.Begin <= last.End+1 {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func refSubtractRanges(have, take []Range) []Range {
	out := have
	for _, t := range take {
		var next []Range
		for _, h := range out {
			if t.End < h.Begin || t.Begin > h.End {
				next = append(next, h)
				continue
			}
			if t.Begin > h.Begin {
				next = append(next, Range{h.Begin, t.Begin - 1})
			}
			if t.End < h.End {
				next = append(next, Range{t.End + 1, h.End})
			}
		}
		out = next
	}
	return out
}

func refRangeCovered(have []Range, want Range) bool {
	for _, h := range have {
		if h.Begin <= want.Begin && want.End <= h.End {
			return true
		}
	}
	return false
}

// resGen draws resource lists from small vocabularies, so that keys
// collide often, and mixes in the awkward inputs the arithmetic must keep
// treating as it always has: nil values, types that disagree with the
// value set, tiny and negative scalars, overlapping, touching, inverted
// and uint64-topping ranges, roles and principals holding the separator
// bytes of the key encoding.
type resGen struct{ r *rand.Rand }

var (
	genNames      = []string{"cpus", "mem", "disk", "ports", "gpus"}
	genRoles      = []string{"", "*", "prod", "eng/web", "a", "a\x00b"}
	genPrincipals = []string{"", "ops", "b\x00", "x\x01"}
	genScalars    = []float64{0, 1e-9, 0.0004, 0.0005, 0.0006, 0.001, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 31.999, 1024, -0.1, -1, -0.0004, 1.0 / 3}
)

func (g resGen) pick(n int) int { return g.r.IntN(n) }

func (g resGen) chance(p float64) bool { return g.r.Float64() < p }

func (g resGen) scalar() float64 {
	switch {
	case g.chance(0.01):
		return math.Inf(1)
	case g.chance(0.01):
		return math.NaN()
	case g.chance(0.3):
		return g.r.Float64() * 10
	}
	return genScalars[g.pick(len(genScalars))]
}

func (g resGen) ranges() []Range {
	if g.chance(0.05) {
		return []Range{}
	}
	out := make([]Range, g.pick(4))
	for i := range out {
		b := uint64(g.pick(60))
		out[i] = Range{b, b + uint64(g.pick(9))}
		switch {
		case g.chance(0.03):
			out[i] = Range{b + 5, b} // inverted
		case g.chance(0.03):
			out[i] = Range{math.MaxUint64 - uint64(g.pick(4)), math.MaxUint64}
		case g.chance(0.02):
			out[i] = Range{b, math.MaxUint64}
		}
	}
	return out
}

func (g resGen) level() ReservationInfo {
	types := []string{"", ReservationStatic, ReservationDynamic}
	return ReservationInfo{Type: types[g.pick(len(types))], Role: genRoles[g.pick(len(genRoles))], Principal: genPrincipals[g.pick(len(genPrincipals))]}
}

func (g resGen) resource(roles []string) Resource {
	r := Resource{Name: genNames[g.pick(len(genNames))]}
	r.Type = TypeScalar
	if r.Name == "ports" {
		r.Type = TypeRanges
	}
	if g.chance(0.08) {
		r.Type = []string{TypeScalar, TypeRanges, "", "TEXT"}[g.pick(4)]
	}
	if r.Type == TypeRanges || g.chance(0.05) {
		if !g.chance(0.08) {
			r.Ranges = &RangeSet{Range: g.ranges()}
		}
	}
	if r.Type != TypeRanges || g.chance(0.05) {
		if !g.chance(0.08) {
			r.Scalar = &Scalar{Value: g.scalar()}
		}
	}
	r.Role = roles[g.pick(len(roles))]
	switch {
	case g.chance(0.15):
		r.Reservation = &ReservationInfo{Principal: genPrincipals[g.pick(len(genPrincipals))]}
	case g.chance(0.3):
		r.Reservations = []ReservationInfo{g.level()}
		if g.chance(0.4) {
			r.Reservations = append(r.Reservations, g.level())
		}
	}
	return r
}

func (g resGen) list() Resources {
	n, roles := g.pick(9), genRoles
	if g.chance(0.1) {
		// A long list over many roles, past the point where a table
		// switches from a linear search to a map.
		n, roles = 20+g.pick(40), append([]string{"r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"}, genRoles...)
	}
	var out Resources
	if n > 0 || g.chance(0.5) {
		out = make(Resources, 0, n)
	}
	for i := 0; i < n; i++ {
		out = append(out, g.resource(roles))
	}
	return out
}

// part returns some of rs's resources with smaller values, so that
// Contains is often true.
func (g resGen) part(rs Resources) Resources {
	var out Resources
	for _, r := range rs {
		if g.chance(0.4) {
			continue
		}
		if r.Scalar != nil {
			r.Scalar = &Scalar{Value: r.Scalar.Value * g.r.Float64()}
		}
		if r.Ranges != nil && len(r.Ranges.Range) > 0 && g.chance(0.5) {
			x := r.Ranges.Range[g.pick(len(r.Ranges.Range))]
			r.Ranges = &RangeSet{Range: []Range{{x.Begin, x.Begin + (x.End-x.Begin)/2}}}
		}
		out = append(out, r)
	}
	return out
}

func deepCopyResources(rs Resources) Resources {
	if rs == nil {
		return nil
	}
	out := make(Resources, len(rs))
	for i, r := range rs {
		if r.Scalar != nil {
			s := *r.Scalar
			r.Scalar = &s
		}
		if r.Ranges != nil {
			rr := RangeSet{Range: append([]Range(nil), r.Ranges.Range...)}
			if r.Ranges.Range != nil && len(r.Ranges.Range) == 0 {
				rr.Range = []Range{}
			}
			r.Ranges = &rr
		}
		if r.Reservation != nil {
			x := *r.Reservation
			r.Reservation = &x
		}
		if r.Reservations != nil {
			r.Reservations = append([]ReservationInfo{}, r.Reservations...)
		}
		out[i] = r
	}
	return out
}

func sameFloat(a, b float64) bool { return a == b || (a != a && b != b) }

// dumpResources spells rs out with its values rather than its pointers,
// for failure messages and for comparing operands that may hold NaN
// (which reflect.DeepEqual never finds equal to itself).
func dumpResources(rs Resources) string {
	if rs == nil {
		return "nil"
	}
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "{%q %q", r.Name, r.Type)
		if r.Scalar != nil {
			fmt.Fprintf(&b, " scalar=%v", r.Scalar.Value)
		}
		if r.Ranges != nil {
			fmt.Fprintf(&b, " ranges=%#v", r.Ranges.Range)
		}
		fmt.Fprintf(&b, " role=%q", r.Role)
		if r.Reservation != nil {
			fmt.Fprintf(&b, " reservation=%+v", *r.Reservation)
		}
		if r.Reservations != nil {
			fmt.Fprintf(&b, " reservations=%+q", r.Reservations)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func dumpAny(v any) string {
	if rs, ok := v.(Resources); ok {
		return dumpResources(rs)
	}
	return fmt.Sprintf("%#v", v)
}

func TestResourcesMatchReference(t *testing.T) {
	g := resGen{rand.New(rand.NewPCG(7, 11))}
	cases := 20000
	if testing.Short() {
		cases = 3000
	}
	for i := 0; i < cases; i++ {
		a := g.list()
		b := g.list()
		if g.chance(0.4) {
			b = g.part(a)
		}
		a0, b0 := deepCopyResources(a), deepCopyResources(b)
		fail := func(op string, got, want any) {
			t.Helper()
			t.Fatalf("case %d: %s:\na =\n%sb =\n%sgot\n%s\nwant\n%s", i, op, dumpResources(a0), dumpResources(b0), dumpAny(got), dumpAny(want))
		}
		check := func(op string, got, want Resources) {
			t.Helper()
			if !reflect.DeepEqual(got, want) {
				fail(op, got, want)
			}
		}
		check("Normalize(a)", a.Normalize(), refNormalize(a))
		check("Plus(a, b)", a.Plus(b), refPlus(a, b))
		check("Minus(a, b)", a.Minus(b), refMinus(a, b))
		check("Minus(b, a)", b.Minus(a), refMinus(b, a))
		na := refNormalize(a)
		check("Minus(norm a, b)", na.Minus(b), refMinus(na, b))
		check("Plus(norm a - b, b)", na.Minus(b).Plus(b), refPlus(refMinus(na, b), b))
		check("Unreserved(a)", a.Unreserved(), refUnreserved(a))
		role := genRoles[g.pick(len(genRoles))]
		check("ReservedTo(a)", a.ReservedTo(role), refReservedTo(a, role))
		for _, x := range [][2]Resources{{a, b}, {b, a}, {na, b}, {a, a}} {
			if got, want := x[0].Contains(x[1]), refContains(x[0], x[1]); got != want {
				fail("Contains", got, want)
			}
		}
		for _, x := range []Resources{a, b, refMinus(a, b), refMinus(b, a)} {
			if got, want := x.Empty(), refEmpty(x); got != want {
				fail("Empty", got, want)
			}
		}
		for _, name := range genNames {
			if got, want := a.Scalar(name), refScalar(a, name); !sameFloat(got, want) {
				fail("Scalar("+name+")", got, want)
			}
			if got, want := a.Ranges(name), refRanges(a, name); !reflect.DeepEqual(got, want) {
				fail("Ranges("+name+")", got, want)
			}
		}
		if (!reflect.DeepEqual(a, a0) || !reflect.DeepEqual(b, b0)) && (dumpResources(a) != dumpResources(a0) || dumpResources(b) != dumpResources(b0)) {
			fail("operands changed", dumpResources(a)+dumpResources(b), dumpResources(a0)+dumpResources(b0))
		}
	}
}

// TestResourcesKeyEncoding pins down the cases where comparing
// reservation stacks level by level and comparing their encodings differ:
// separator bytes inside a role or principal.
func TestResourcesKeyEncoding(t *testing.T) {
	mk := func(v float64, levels ...ReservationInfo) Resource {
		r := ScalarResource("cpus", v)
		r.Reservations = levels
		return r
	}
	// "\x00a\x00b\x00\x01" spells both first levels, so the two add up.
	x := mk(1, ReservationInfo{Role: "a\x00b"}, ReservationInfo{Type: ReservationDynamic, Role: "r"})
	y := mk(2, ReservationInfo{Role: "a", Principal: "b\x00"}, ReservationInfo{Type: ReservationDynamic, Role: "r"})
	z := mk(4, ReservationInfo{Role: "a", Principal: "b"}, ReservationInfo{Type: ReservationDynamic, Role: "r"})
	for _, rs := range []Resources{{x, y, z}, {z, y, x}, {y, z, x}} {
		got, want := rs.Normalize(), refNormalize(rs)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v\nwant %#v", got, want)
		}
		if len(got) != 2 {
			t.Fatalf("want x and y to add up apart from z, got %#v", got)
		}
		half := mk(0.5, y.Reservations...)
		if !(Resources{x}).Contains(Resources{half}) || (Resources{x}).Contains(Resources{y}) {
			t.Fatal("x and y do not compare as one key")
		}
	}
}

// TestResourcesResultsStandAlone checks that results share no writable
// memory with the operands or with each other, now that a result's values
// come from shared blocks.
func TestResourcesResultsStandAlone(t *testing.T) {
	in := Resources{
		RangesResource("ports", Range{1, 10}, Range{20, 30}),
		RangesResource("disks", Range{1, 2}),
		ScalarResource("cpus", 1),
		ScalarResource("mem", 2),
	}
	want := deepCopyResources(in)
	out := in.Normalize() // cpus, disks, mem, ports
	for _, r := range out {
		if r.Ranges != nil {
			r.Ranges.Range[0].Begin = 99
			// Appending to one result's ranges must not reach the next's.
			r.Ranges.Range = append(r.Ranges.Range, Range{98, 98})
		}
		if r.Scalar != nil {
			r.Scalar.Value += 10
		}
	}
	if !reflect.DeepEqual(in, want) {
		t.Fatalf("writing the result changed the operand:\n%s", dumpResources(in))
	}
	got := dumpResources(out)
	wantOut := dumpResources(Resources{
		ScalarResource("cpus", 11),
		RangesResource("disks", Range{99, 2}, Range{98, 98}),
		ScalarResource("mem", 12),
		RangesResource("ports", Range{99, 10}, Range{20, 30}, Range{98, 98}),
	})
	if got != wantOut {
		t.Fatalf("results write through each other:\n got\n%s want\n%s", got, wantOut)
	}
}

// TestResourcesRangesMatchReference stresses the ranges side: a few
// ports resources over a narrow span, so that ranges overlap and touch
// often, with lists long enough (more than twelve ranges a key) for the
// sorts to leave insertion sort behind.
func TestResourcesRangesMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	span := func() Range {
		b := r.Uint64N(40)
		x := Range{b, b + r.Uint64N(6)}
		switch p := r.Float64(); {
		case p < 0.02:
			x = Range{b + 3, b}
		case p < 0.04:
			x = Range{b, math.MaxUint64}
		case p < 0.05:
			x = Range{math.MaxUint64 - r.Uint64N(3), math.MaxUint64}
		}
		return x
	}
	list := func() Resources {
		var out Resources
		for n := r.IntN(4); n > 0; n-- {
			rs := make([]Range, r.IntN(20))
			for i := range rs {
				rs[i] = span()
			}
			if r.IntN(3) == 0 {
				// Sorted lists take the paths that skip sorting or copying.
				slices.SortFunc(rs, func(x, y Range) int { return cmp.Compare(x.Begin, y.Begin) })
			}
			res := RangesResource("ports", rs...)
			if r.IntN(4) == 0 {
				res.Role = "prod"
			}
			out = append(out, res)
		}
		return out
	}
	cases := 20000
	if testing.Short() {
		cases = 3000
	}
	for i := 0; i < cases; i++ {
		a, b := list(), list()
		want := Resources{RangesResource("ports", span())}
		for _, c := range []struct {
			op        string
			got, want any
		}{
			{"Normalize", a.Normalize(), refNormalize(a)},
			{"Plus", a.Plus(b), refPlus(a, b)},
			{"Minus", a.Minus(b), refMinus(a, b)},
			{"Contains", a.Contains(b), refContains(a, b)},
			{"Contains one", a.Contains(want), refContains(a, want)},
			{"Contains one normalised", refNormalize(a).Contains(want), refContains(refNormalize(a), want)},
			{"Ranges", a.Ranges("ports"), refRanges(a, "ports")},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Fatalf("case %d: %s:\na =\n%sb =\n%sgot\n%s\nwant\n%s", i, c.op, dumpResources(a), dumpResources(b), dumpAny(c.got), dumpAny(c.want))
			}
		}
	}
}
