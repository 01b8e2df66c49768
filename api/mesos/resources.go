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

// Resource is one named resource (scalar or ranges) of a role.
type Resource struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Scalar *Scalar   `json:"scalar,omitempty"`
	Ranges *RangeSet `json:"ranges,omitempty"`
	Role   string    `json:"role,omitempty"`
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

func roleOf(r Resource) string {
	if r.Role == "" {
		return "*"
	}
	return r.Role
}

type resKey struct{ name, role string }

// collect folds rs into per-(name, role) accumulators.
func collect(rs Resources) (map[resKey]float64, map[resKey][]Range, []resKey) {
	scalars := map[resKey]float64{}
	ranges := map[resKey][]Range{}
	var order []resKey
	for _, r := range rs {
		k := resKey{r.Name, roleOf(r)}
		_, s := scalars[k]
		_, g := ranges[k]
		if !s && !g {
			order = append(order, k)
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
	return scalars, ranges, order
}

func build(scalars map[resKey]float64, ranges map[resKey][]Range, order []resKey) Resources {
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].name != order[j].name {
			return order[i].name < order[j].name
		}
		return order[i].role < order[j].role
	})
	out := make(Resources, 0, len(order))
	for _, k := range order {
		role := k.role
		if role == "*" {
			role = ""
		}
		if v, ok := scalars[k]; ok {
			v = roundScalar(v)
			if v > epsilon {
				out = append(out, Resource{Name: k.name, Type: TypeScalar, Scalar: &Scalar{Value: v}, Role: role})
			}
			continue
		}
		if rs := mergeRanges(ranges[k]); len(rs) > 0 {
			out = append(out, Resource{Name: k.name, Type: TypeRanges, Ranges: &RangeSet{Range: rs}, Role: role})
		}
	}
	return out
}

// Normalize merges duplicate entries and drops empty ones.
func (rs Resources) Normalize() Resources { return build(collect(rs)) }

// Plus returns rs + other.
func (rs Resources) Plus(other Resources) Resources {
	return append(append(Resources{}, rs...), other...).Normalize()
}

// Minus returns rs - other; what other holds beyond rs is ignored (use
// Contains first when that matters).
func (rs Resources) Minus(other Resources) Resources {
	s, g, order := collect(rs)
	os, og, _ := collect(other)
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
	return build(s, g, order)
}

// Contains reports whether rs holds at least everything in other.
func (rs Resources) Contains(other Resources) bool {
	s, g, _ := collect(rs)
	os, og, _ := collect(other)
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
		if r.Role != "" && r.Role != "*" {
			fmt.Fprintf(&b, "(%s)", r.Role)
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
