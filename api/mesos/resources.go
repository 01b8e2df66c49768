package mesos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Resource value types.
const (
	TypeScalar = "SCALAR"
	TypeRanges = "RANGES"
)

// Scalar is Value.Scalar.
type Scalar struct {
	Value float64 `json:"value"`
}

// Range is an inclusive [Begin, End] range.
type Range struct {
	Begin uint64 `json:"begin"`
	End   uint64 `json:"end"`
}

// RangeSet is Value.Ranges.
type RangeSet struct {
	Range []Range `json:"range"`
}

// Reservation types (ReservationInfo.Type).
const (
	// ReservationStatic is a reservation made on the agent's command line
	// ("cpus(prod):2"); only an agent restart takes it away.
	ReservationStatic = "STATIC"
	// ReservationDynamic is a reservation made by a RESERVE operation or
	// the operator API; UNRESERVE takes it away.
	ReservationDynamic = "DYNAMIC"
)

// ReservationInfo is one entry of a resource's reservation stack, as in
// Mesos' Resource.ReservationInfo (post reservation-refinement format).
type ReservationInfo struct {
	Type      string `json:"type,omitempty"`
	Role      string `json:"role,omitempty"`
	Principal string `json:"principal,omitempty"`
}

// Resource is one named resource (scalar or ranges) of a role.
//
// A resource is reserved to the role of the last entry of Reservations
// (each later entry refines the previous one to a sub-role); without
// Reservations, to Role (Mesos' deprecated field, "" or "*" meaning
// unreserved): dynamically when Reservation (the pre-refinement format)
// is set, else statically. Arithmetic treats the two formats of the same
// reservation as the same thing (see ReservationStack).
type Resource struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Scalar *Scalar   `json:"scalar,omitempty"`
	Ranges *RangeSet `json:"ranges,omitempty"`
	Role   string    `json:"role,omitempty"`
	// Reservation is the pre-refinement format's dynamic reservation
	// (principal) to Role.
	Reservation  *ReservationInfo  `json:"reservation,omitempty"`
	Reservations []ReservationInfo `json:"reservations,omitempty"`
}

// ReservationStack returns r's reservations in the refined format: one
// entry per level, innermost last, nil when r is unreserved. The
// pre-refinement format becomes one STATIC or DYNAMIC entry. The result
// is a copy.
func (r Resource) ReservationStack() []ReservationInfo {
	if len(r.Reservations) > 0 {
		return append([]ReservationInfo(nil), r.Reservations...)
	}
	if r.Role == "" || r.Role == "*" {
		return nil
	}
	if r.Reservation != nil {
		return []ReservationInfo{{Type: ReservationDynamic, Role: r.Role, Principal: r.Reservation.Principal}}
	}
	return []ReservationInfo{{Type: ReservationStatic, Role: r.Role}}
}

// ReservationRole returns the role r is reserved to, or "*" when it is
// unreserved.
func (r Resource) ReservationRole() string {
	if n := len(r.Reservations); n > 0 {
		if role := r.Reservations[n-1].Role; role != "" {
			return role
		}
	}
	if r.Role == "" {
		return "*"
	}
	return r.Role
}

// Reserved reports whether r is reserved to a role.
func (r Resource) Reserved() bool { return r.ReservationRole() != "*" }

// Dynamic reports whether r's current (innermost) reservation is dynamic,
// i.e. whether UNRESERVE may take it away.
func (r Resource) Dynamic() bool {
	if n := len(r.Reservations); n > 0 {
		return r.Reservations[n-1].Type == ReservationDynamic
	}
	return r.Reservation != nil && r.Reserved()
}

// Resources is a list of resources with the arithmetic the master, the
// allocator and the agent need. Every operation returns a new, normalised
// list (one entry per name and role, ranges sorted and merged) and leaves
// its operands alone.
type Resources []Resource

// epsilon absorbs float noise in scalar arithmetic (Mesos uses fixed point
// with three decimals; we round to the same).
const epsilon = 0.0005

func roundScalar(v float64) float64 { return math.Round(v*1000) / 1000 }

// ScalarResource returns a scalar resource of the default role.
func ScalarResource(name string, v float64) Resource {
	return Resource{Name: name, Type: TypeScalar, Scalar: &Scalar{Value: roundScalar(v)}}
}

// RangesResource returns a ranges resource of the default role.
func RangesResource(name string, rs ...Range) Resource {
	return Resource{Name: name, Type: TypeRanges, Ranges: &RangeSet{Range: rs}}
}

// resKey identifies the resources that add up: same name, same
// reservation role and same reservation stack (resv is "" for unreserved
// and plain static reservations, else an encoding of the stack). Only a
// long list's index spells the encoding out (see table); the common path
// compares the stacks in place through key.
type resKey struct{ name, role, resv string }

// resvKey is the reservation part of a key without the string its
// encoding would cost: n levels, read from stack, or for the
// pre-refinement dynamic format from the one synthetic level in one.
// n is 0 for the keys whose encoding is "".
type resvKey struct {
	stack []ReservationInfo
	one   ReservationInfo
	n     int
}

func (k *resvKey) at(i int) ReservationInfo {
	if k.stack != nil {
		return k.stack[i]
	}
	return k.one
}

// piece returns the p-th string of the encoding, which spells each level
// as Type, 0, Role, 0, Principal, 1.
func (k *resvKey) piece(p int) string {
	switch p % 6 {
	case 0:
		return k.at(p / 6).Type
	case 2:
		return k.at(p / 6).Role
	case 4:
		return k.at(p / 6).Principal
	case 5:
		return "\x01"
	default:
		return "\x00"
	}
}

func (k *resvKey) encode() string {
	if k.n == 0 {
		return ""
	}
	var b strings.Builder
	for i := 0; i < k.n*6; i++ {
		b.WriteString(k.piece(i))
	}
	return b.String()
}

// compareResv orders two reservation parts exactly as strings.Compare
// orders their encodings, without building them. Comparing the levels
// field by field would not do: a role or principal holding a 0 or 1 byte
// can make two different stacks encode alike, and such resources have
// always added up.
func compareResv(a, b *resvKey) int {
	if a.n == 0 || b.n == 0 {
		// An empty encoding sorts first; any level spells at least three bytes.
		return cmp.Compare(a.n, b.n)
	}
	if a.n == b.n {
		same := true
		for i := 0; i < a.n && same; i++ {
			same = a.at(i) == b.at(i)
		}
		if same {
			return 0
		}
	}
	var sa, sb string
	pa, pb, na, nb := 0, 0, a.n*6, b.n*6
	for {
		for sa == "" && pa < na {
			sa, pa = a.piece(pa), pa+1
		}
		for sb == "" && pb < nb {
			sb, pb = b.piece(pb), pb+1
		}
		switch {
		case sa == "" && sb == "":
			return 0
		case sa == "":
			return -1
		case sb == "":
			return 1
		}
		m := min(len(sa), len(sb))
		if c := strings.Compare(sa[:m], sb[:m]); c != 0 {
			return c
		}
		sa, sb = sa[m:], sb[m:]
	}
}

// key is a resKey whose reservation part has not been spelled out.
type key struct {
	name, role string
	resv       resvKey
}

func keyOf(r *Resource) key {
	k := key{name: r.Name, role: r.ReservationRole()}
	switch {
	case len(r.Reservations) > 0:
		k.resv = resvKey{stack: r.Reservations, n: len(r.Reservations)}
	case r.Reservation != nil && r.Reserved():
		k.resv = resvKey{one: ReservationInfo{Type: ReservationDynamic, Role: r.Role, Principal: r.Reservation.Principal}, n: 1}
	default:
		return k // unreserved, or static in the deprecated format
	}
	if k.resv.n == 1 {
		if x := k.resv.at(0); (x.Type == "" || x.Type == ReservationStatic) && x.Principal == "" {
			k.resv = resvKey{} // a plain static reservation, the same as the deprecated format's
		}
	}
	return k
}

func compareKeys(a, b *key) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.role, b.role); c != 0 {
		return c
	}
	return compareResv(&a.resv, &b.resv)
}

func (k *key) equal(o *key) bool {
	return k.name == o.name && k.role == o.role && compareResv(&k.resv, &o.resv) == 0
}

func (k *key) spelled() resKey { return resKey{k.name, k.role, k.resv.encode()} }

// entry accumulates the resources of one key. rep is the first resource
// seen of the key, whose role and reservations the result keeps. A key
// can hold both scalars and ranges when its resources disagree on Type;
// the scalar side then wins, as it always has.
type entry struct {
	key                  key
	rep                  *Resource
	scalar               float64
	hasScalar, hasRanges bool
	// The key's ranges, concatenated in input order, live in one of three
	// places. With one source, ranges is that operand's own slice, which
	// nothing writes through. With more, they are scratch[lo:hi] of the
	// table (inScratch), which grows in place while the key's are the last
	// ranges there; when another key's came in between, ranges becomes a
	// slice of the key's own (owned), so that interleaved keys never copy
	// their ranges over and over.
	ranges           []Range
	inScratch, owned bool
	lo, hi           int
}

func (e *entry) rangesIn(scratch []Range) []Range {
	if e.inScratch {
		return scratch[e.lo:e.hi]
	}
	return e.ranges
}

// addRanges appends rr to e's ranges, using and returning scratch.
func (e *entry) addRanges(rr, scratch []Range) []Range {
	switch {
	case e.owned:
		e.ranges = append(e.ranges, rr...)
	case e.inScratch && e.hi == len(scratch):
		scratch = append(scratch, rr...)
		e.hi = len(scratch)
	case e.inScratch:
		e.ranges = append(append(make([]Range, 0, e.hi-e.lo+len(rr)), scratch[e.lo:e.hi]...), rr...)
		e.inScratch, e.owned = false, true
	case e.ranges == nil:
		e.ranges = rr
	default:
		e.lo = len(scratch)
		scratch = append(append(scratch, e.ranges...), rr...)
		e.ranges, e.inScratch, e.hi = nil, true, len(scratch)
	}
	return scratch
}

// linearKeys is how many keys a table searches one by one before it
// builds a map; resource lists rarely hold more than ten.
const linearKeys = 16

// table folds resource lists into one entry per key. Callers give it
// small arrays on their stack for ents and scratch, so the common list
// costs no allocation; the methods take and return it by value because a
// pointer receiver would make those arrays escape to the heap.
type table struct {
	ents    []entry
	scratch []Range
	index   map[resKey]int
}

// tableBuf is the stack space of one table.
type tableBuf struct {
	ents    [8]entry
	scratch [16]Range
}

func (b *tableBuf) table() table { return table{ents: b.ents[:0], scratch: b.scratch[:0]} }

func (t table) find(k *key) int {
	if t.index != nil {
		if i, ok := t.index[k.spelled()]; ok {
			return i
		}
		return -1
	}
	for i := range t.ents {
		if t.ents[i].key.equal(k) {
			return i
		}
	}
	return -1
}

func (t table) add(rs Resources) table {
	for i := range rs {
		r := &rs[i]
		k := keyOf(r)
		j := t.find(&k)
		if j < 0 {
			j = len(t.ents)
			t.ents = append(t.ents, entry{key: k, rep: r})
			switch {
			case t.index != nil:
				t.index[k.spelled()] = j
			case len(t.ents) > linearKeys:
				t.index = make(map[resKey]int, 2*len(t.ents))
				for n := range t.ents {
					t.index[t.ents[n].key.spelled()] = n
				}
			}
		}
		e := &t.ents[j]
		switch r.Type {
		case TypeRanges:
			e.hasRanges = true
			if r.Ranges != nil {
				t.scratch = e.addRanges(r.Ranges.Range, t.scratch)
			}
		default:
			e.hasScalar = true
			if r.Scalar != nil {
				e.scalar += r.Scalar.Value
			}
		}
	}
	return t
}

// cell holds one result's value; build allocates them in one block.
type cell struct {
	scalar Scalar
	ranges RangeSet
}

// build sorts the table by key (which leaves its index stale) and
// renders it as a normalised list, dropping empty entries. The result
// shares nothing writable with the operands: its values live in three
// fresh blocks (the list, its cells, its ranges), and each ranges slice
// is capped so that appending to one cannot reach another.
func (t table) build() Resources {
	ents, scratch := t.ents, t.scratch
	slices.SortFunc(ents, func(a, b entry) int { return compareKeys(&a.key, &b.key) })
	n, nr := 0, 0
	for i := range ents {
		e := &ents[i]
		if e.hasScalar {
			if roundScalar(e.scalar) > epsilon {
				n++
			}
		} else if m := len(e.rangesIn(scratch)); m > 0 {
			n, nr = n+1, nr+m // merging never lengthens a list
		}
	}
	out := make(Resources, 0, n)
	if n == 0 {
		return out
	}
	cells := make([]cell, n)
	var rbuf []Range
	if nr > 0 {
		rbuf = make([]Range, 0, nr)
	}
	for i := range ents {
		e := &ents[i]
		rep := e.rep
		role := rep.Role
		if role == "*" {
			role = ""
		}
		res := Resource{Name: e.key.name, Role: role, Reservation: rep.Reservation, Reservations: rep.Reservations}
		if e.hasScalar {
			v := roundScalar(e.scalar)
			if !(v > epsilon) { // NaN included
				continue
			}
			c := &cells[len(out)]
			c.scalar.Value = v
			res.Type, res.Scalar = TypeScalar, &c.scalar
			out = append(out, res)
			continue
		}
		src := e.rangesIn(scratch)
		if len(src) == 0 {
			continue
		}
		start := len(rbuf)
		rbuf = mergeAppend(rbuf, src)
		c := &cells[len(out)]
		c.ranges.Range = rbuf[start:len(rbuf):len(rbuf)]
		res.Type, res.Ranges = TypeRanges, &c.ranges
		out = append(out, res)
	}
	return out
}

// Normalize merges duplicate entries and drops empty ones.
func (rs Resources) Normalize() Resources {
	var buf tableBuf
	return buf.table().add(rs).build()
}

// Unreserved returns the unreserved part of rs.
func (rs Resources) Unreserved() Resources {
	var out Resources
	for _, r := range rs {
		if !r.Reserved() {
			out = append(out, r)
		}
	}
	return out.Normalize()
}

// ReservedTo returns the part of rs reserved to exactly role.
func (rs Resources) ReservedTo(role string) Resources {
	var out Resources
	for _, r := range rs {
		if r.Reserved() && r.ReservationRole() == role {
			out = append(out, r)
		}
	}
	return out.Normalize()
}

// Plus returns rs + other.
func (rs Resources) Plus(other Resources) Resources {
	var buf tableBuf
	return buf.table().add(rs).add(other).build()
}

// Minus returns rs - other; what other holds beyond rs is ignored (use
// Contains first when that matters).
func (rs Resources) Minus(other Resources) Resources {
	var abuf, bbuf tableBuf
	a, b := abuf.table().add(rs), bbuf.table().add(other)
	for i := range b.ents {
		eb := &b.ents[i]
		j := a.find(&eb.key)
		if j < 0 {
			continue
		}
		ea := &a.ents[j]
		// Subtract the other side's sum, not its terms one by one: float
		// rounding would tell the two apart.
		if eb.hasScalar && ea.hasScalar {
			ea.scalar -= eb.scalar
		}
		if eb.hasRanges && ea.hasRanges {
			// The difference goes to the end of a's scratch, which the
			// views only read below that point.
			var have, take []Range
			have, a.scratch = mergedView(ea.rangesIn(a.scratch), a.scratch)
			take, a.scratch = mergedView(eb.rangesIn(b.scratch), a.scratch)
			lo := len(a.scratch)
			a.scratch = subtractAppend(a.scratch, have, take)
			ea.ranges, ea.inScratch, ea.owned, ea.lo, ea.hi = nil, true, false, lo, len(a.scratch)
		}
	}
	return a.build()
}

// Contains reports whether rs holds at least everything in other.
func (rs Resources) Contains(other Resources) bool {
	var abuf, bbuf tableBuf
	a, b := abuf.table().add(rs), bbuf.table().add(other)
	scratch := b.scratch
	for i := range b.ents {
		eb := &b.ents[i]
		var ea *entry
		if j := a.find(&eb.key); j >= 0 {
			ea = &a.ents[j]
		}
		if eb.hasScalar {
			var have float64
			if ea != nil && ea.hasScalar {
				have = ea.scalar
			}
			if v := eb.scalar; v > epsilon && have+epsilon < v {
				return false
			}
		}
		if eb.hasRanges {
			var have, want []Range
			if ea != nil && ea.hasRanges {
				have, scratch = mergedView(ea.rangesIn(a.scratch), scratch)
			}
			want, scratch = mergedView(eb.rangesIn(b.scratch), scratch)
			for _, w := range want {
				if !rangeCovered(have, w) {
					return false
				}
			}
		}
	}
	return true
}

// Scalar returns the total of the named scalar over all roles.
func (rs Resources) Scalar(name string) float64 {
	var v float64
	for _, r := range rs {
		if r.Name == name && r.Scalar != nil {
			v += r.Scalar.Value
		}
	}
	return roundScalar(v)
}

// Ranges returns the merged ranges of the named resource over all roles.
func (rs Resources) Ranges(name string) []Range {
	n := 0
	for i := range rs {
		if r := &rs[i]; r.Name == name && r.Ranges != nil {
			n += len(r.Ranges.Range)
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Range, 0, n)
	for i := range rs {
		if r := &rs[i]; r.Name == name && r.Ranges != nil {
			out = append(out, r.Ranges.Range...)
		}
	}
	return mergeInPlace(out)
}

// Empty reports whether rs holds nothing, i.e. whether Normalize would
// return an empty list, without building that list.
func (rs Resources) Empty() bool {
	var buf tableBuf
	t := buf.table().add(rs)
	for i := range t.ents {
		e := &t.ents[i]
		if e.hasScalar {
			if roundScalar(e.scalar) > epsilon {
				return false
			}
		} else if len(e.rangesIn(t.scratch)) > 0 {
			return false
		}
	}
	return true
}

// String renders rs like Mesos' --resources flag: "cpus:1;mem:128;ports:[31000-31005]".
func (rs Resources) String() string {
	var b strings.Builder
	for i, r := range rs.Normalize() {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(r.Name)
		if r.Reserved() {
			fmt.Fprintf(&b, "(%s)", r.ReservationRole())
		}
		b.WriteByte(':')
		if r.Scalar != nil {
			fmt.Fprintf(&b, "%g", r.Scalar.Value)
		} else if r.Ranges != nil {
			b.WriteString(FormatRanges(r.Ranges.Range))
		}
	}
	return b.String()
}

// FormatRanges renders ranges as Mesos does: "[31000-31005, 31010-31010]".
func FormatRanges(rs []Range) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d-%d", r.Begin, r.End)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// ParseResources parses Mesos' --resources syntax:
// "cpus:4;mem:8192;disk:10000;ports:[31000-32000]" with an optional
// "(role)" after each name.
func ParseResources(s string) (Resources, error) {
	var out Resources
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("resources: %q: want name:value", item)
		}
		role := ""
		if i := strings.IndexByte(name, '('); i >= 0 && strings.HasSuffix(name, ")") {
			name, role = name[:i], name[i+1:len(name)-1]
		}
		name = strings.TrimSpace(name)
		val = strings.TrimSpace(val)
		if name == "" {
			return nil, fmt.Errorf("resources: %q: empty name", item)
		}
		if strings.HasPrefix(val, "[") {
			rs, err := parseRanges(val)
			if err != nil {
				return nil, fmt.Errorf("resources: %s: %w", name, err)
			}
			out = append(out, Resource{Name: name, Type: TypeRanges, Ranges: &RangeSet{Range: rs}, Role: role})
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(val, "%g", &v); err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("resources: %s: bad scalar %q", name, val)
		}
		out = append(out, Resource{Name: name, Type: TypeScalar, Scalar: &Scalar{Value: v}, Role: role})
	}
	return out.Normalize(), nil
}

func parseRanges(s string) ([]Range, error) {
	if !strings.HasSuffix(s, "]") {
		return nil, fmt.Errorf("bad ranges %q", s)
	}
	var out []Range
	for _, p := range strings.Split(s[1:len(s)-1], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		var r Range
		if _, err := fmt.Sscanf(p, "%d-%d", &r.Begin, &r.End); err != nil || r.End < r.Begin {
			return nil, fmt.Errorf("bad range %q", p)
		}
		out = append(out, r)
	}
	return mergeRanges(out), nil
}

func mergeRanges(rs []Range) []Range {
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

func subtractRanges(have, take []Range) []Range {
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

// canonical reports whether rs is already what mergeRanges makes of it:
// valid ranges, sorted, neither overlapping nor touching. Such a list is
// used as it is, without a copy.
func canonical(rs []Range) bool {
	for i := range rs {
		if rs[i].Begin > rs[i].End || rs[i].End == math.MaxUint64 {
			return false
		}
		if i > 0 && rs[i].Begin <= rs[i-1].End+1 {
			return false
		}
	}
	return true
}

// mergedView returns mergeRanges(rs): rs itself when it is canonical,
// else a merged copy appended to scratch. The caller only reads it.
func mergedView(rs, scratch []Range) (view, grown []Range) {
	if len(rs) == 0 {
		return nil, scratch
	}
	if canonical(rs) {
		return rs, scratch
	}
	lo := len(scratch)
	scratch = mergeAppend(scratch, rs)
	return scratch[lo:len(scratch):len(scratch)], scratch
}

// mergeAppend appends mergeRanges(src) to dst.
func mergeAppend(dst, src []Range) []Range {
	start := len(dst)
	dst = append(dst, src...)
	return dst[:start+len(mergeInPlace(dst[start:]))]
}

// mergeInPlace merges s in place and returns the merged prefix, equal to
// mergeRanges(s). For valid ranges the result is the one way to write the
// union as sorted, separate ranges, so any sort gives it; an inverted
// range or one ending at the top of uint64 breaks that argument, and
// those lists go through mergeRanges itself to keep its exact output.
func mergeInPlace(s []Range) []Range {
	sorted := true
	for i := range s {
		if s[i].Begin > s[i].End || s[i].End == math.MaxUint64 {
			return s[:copy(s, mergeRanges(s))]
		}
		if i > 0 && s[i].Begin < s[i-1].Begin {
			sorted = false
		}
	}
	if len(s) == 0 {
		return s
	}
	if !sorted {
		slices.SortFunc(s, func(a, b Range) int { return cmp.Compare(a.Begin, b.Begin) })
	}
	w := 0
	for i := 1; i < len(s); i++ {
		if s[i].Begin <= s[w].End+1 {
			if s[i].End > s[w].End {
				s[w].End = s[i].End
			}
			continue
		}
		w++
		s[w] = s[i]
	}
	return s[:w+1]
}

// subtractAppend appends subtractRanges(have, take) to dst. When both are
// canonical the difference is a set with one canonical spelling, which a
// single sweep finds; otherwise subtractRanges does the work.
func subtractAppend(dst, have, take []Range) []Range {
	if !canonical(have) || !canonical(take) {
		return append(dst, subtractRanges(have, take)...)
	}
	j := 0
	for _, h := range have {
		for j < len(take) && take[j].End < h.Begin {
			j++
		}
		cur, done := h.Begin, false
		for k := j; k < len(take) && take[k].Begin <= h.End; k++ {
			t := take[k]
			if t.Begin > cur {
				dst = append(dst, Range{cur, t.Begin - 1})
			}
			if t.End >= h.End {
				done = true
				break
			}
			cur = t.End + 1
		}
		if !done {
			dst = append(dst, Range{cur, h.End})
		}
	}
	return dst
}

func rangeCovered(have []Range, want Range) bool {
	for _, h := range have {
		if h.Begin <= want.Begin && want.End <= h.End {
			return true
		}
	}
	return false
}

// ParseAttributes parses Mesos' --attributes syntax: "rack:r1;zone:a;level:3".
// Numeric values become scalars, others text.
func ParseAttributes(s string) ([]Attribute, error) {
	var out []Attribute
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, ok := strings.Cut(item, ":")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok || name == "" || val == "" {
			return nil, fmt.Errorf("attributes: %q: want name:value", item)
		}
		var v float64
		if _, err := fmt.Sscanf(val, "%g", &v); err == nil && fmt.Sprint(v) == val {
			out = append(out, Attribute{Name: name, Type: TypeScalar, Scalar: &Scalar{Value: v}})
			continue
		}
		out = append(out, Attribute{Name: name, Type: "TEXT", Text: &Text{Value: val}})
	}
	return out, nil
}

// V0 renders resources as the v0 endpoints (/master/state, an agent's
// /state) show them: scalars by name, ranges as "[31000-31005]", and
// cpus, mem and disk always present.
func (rs Resources) V0() map[string]any {
	out := map[string]any{"cpus": 0.0, "mem": 0.0, "disk": 0.0}
	for _, r := range rs.Normalize() {
		if r.Scalar != nil {
			out[r.Name] = rs.Scalar(r.Name)
		} else if r.Ranges != nil {
			out[r.Name] = FormatRanges(rs.Ranges(r.Name))
		}
	}
	return out
}
