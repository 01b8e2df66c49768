package mesos

import (
	"fmt"
	"math"
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
// and plain static reservations, else an encoding of the stack).
type resKey struct{ name, role, resv string }

func keyOf(r Resource) resKey {
	k := resKey{name: r.Name, role: r.ReservationRole()}
	if len(r.Reservations) == 0 && (r.Reservation == nil || !r.Reserved()) {
		return k // unreserved, or static in the deprecated format
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

// collect folds rs into per-key accumulators; reps holds the first
// resource seen of each key, whose role and reservations the result keeps.
func collect(rs Resources) (map[resKey]float64, map[resKey][]Range, []resKey, map[resKey]Resource) {
	scalars := map[resKey]float64{}
	ranges := map[resKey][]Range{}
	reps := map[resKey]Resource{}
	var order []resKey
	for _, r := range rs {
		k := keyOf(r)
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

func build(scalars map[resKey]float64, ranges map[resKey][]Range, order []resKey, reps map[resKey]Resource) Resources {
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
		if rs := mergeRanges(ranges[k]); len(rs) > 0 {
			out = append(out, Resource{Name: k.name, Type: TypeRanges, Ranges: &RangeSet{Range: rs}, Role: role, Reservation: rep.Reservation, Reservations: rep.Reservations})
		}
	}
	return out
}

// Normalize merges duplicate entries and drops empty ones.
func (rs Resources) Normalize() Resources { return build(collect(rs)) }

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
	return append(append(Resources{}, rs...), other...).Normalize()
}

// Minus returns rs - other; what other holds beyond rs is ignored (use
// Contains first when that matters).
func (rs Resources) Minus(other Resources) Resources {
	s, g, order, reps := collect(rs)
	os, og, _, _ := collect(other)
	for k, v := range os {
		if _, ok := s[k]; ok {
			s[k] -= v
		}
	}
	for k, v := range og {
		if cur, ok := g[k]; ok {
			g[k] = subtractRanges(mergeRanges(cur), mergeRanges(v))
		}
	}
	return build(s, g, order, reps)
}

// Contains reports whether rs holds at least everything in other.
func (rs Resources) Contains(other Resources) bool {
	s, g, _, _ := collect(rs)
	os, og, _, _ := collect(other)
	for k, v := range os {
		if v > epsilon && s[k]+epsilon < v {
			return false
		}
	}
	for k, v := range og {
		have := mergeRanges(g[k])
		for _, want := range mergeRanges(v) {
			if !rangeCovered(have, want) {
				return false
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
	var out []Range
	for _, r := range rs {
		if r.Name == name && r.Ranges != nil {
			out = append(out, r.Ranges.Range...)
		}
	}
	return mergeRanges(out)
}

// Empty reports whether rs holds nothing.
func (rs Resources) Empty() bool { return len(rs.Normalize()) == 0 }

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
