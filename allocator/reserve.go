package allocator

import (
	"fmt"
	"strings"

	"github.com/keelhq/keel/api/mesos"
)

// ValidRole reports, as ErrInvalidRole with the reason, why role is not a
// valid Mesos role: "*", or one or more "/"-separated components, none
// empty, "." or "..", none starting with '-', and no whitespace,
// backslash, NUL or '*' anywhere.
func ValidRole(role string) error {
	if role == "*" {
		return nil
	}
	if role == "" {
		return fmt.Errorf("%w: role name is empty", ErrInvalidRole)
	}
	for _, part := range strings.Split(role, "/") {
		switch {
		case part == "":
			return fmt.Errorf("%w: role %q: empty path component", ErrInvalidRole, role)
		case part == "." || part == "..":
			return fmt.Errorf("%w: role %q: component %q is not allowed", ErrInvalidRole, role, part)
		case strings.HasPrefix(part, "-"):
			return fmt.Errorf("%w: role %q: a component cannot start with '-'", ErrInvalidRole, role)
		case strings.ContainsAny(part, " \t\n\r\f\v\x00\\*"):
			return fmt.Errorf("%w: role %q: whitespace, backslash and '*' are not allowed", ErrInvalidRole, role)
		}
	}
	return nil
}

// Reserve applies a RESERVE operation: it returns res with want
// dynamically reserved to role by principal. want lists the resources as
// they are in res: unreserved, or reserved to an ancestor of role (a
// refinement, as in Mesos' hierarchical reservations). res must hold all
// of want; res itself is left alone.
func Reserve(res mesos.Resources, role, principal string, want mesos.Resources) (mesos.Resources, error) {
	if err := ValidRole(role); err != nil {
		return nil, err
	}
	if role == "*" {
		return nil, fmt.Errorf("%w: cannot reserve to \"*\"", ErrInvalidRole)
	}
	want = want.Normalize()
	if len(want) == 0 {
		return nil, ErrNoResources
	}
	reserved := make(mesos.Resources, 0, len(want))
	for _, w := range want {
		if cur := w.ReservationRole(); cur != "*" && (cur == role || !within(cur, role)) {
			return nil, fmt.Errorf("%w: %s is reserved to %q, which %q does not refine", ErrInvalidRole, w.Name, cur, role)
		}
		w.Reservations = append(w.ReservationStack(), mesos.ReservationInfo{Type: mesos.ReservationDynamic, Role: role, Principal: principal})
		w.Role, w.Reservation = role, nil
		reserved = append(reserved, w)
	}
	if !res.Contains(want) {
		return nil, fmt.Errorf("%w: want %s, have %s", ErrInsufficientResources, want, res)
	}
	return res.Minus(want).Plus(reserved), nil
}

// Unreserve applies an UNRESERVE operation: it returns res with want no
// longer reserved to role (back to unreserved, or to the role a
// refinement came from). want lists resources reserved to role as they
// are in res, or plain amounts ("cpus:2"), which are then taken from
// res's dynamic reservations to role in order. Only dynamic reservations
// can be unreserved; res itself is left alone.
func Unreserve(res mesos.Resources, role string, want mesos.Resources) (mesos.Resources, error) {
	if err := ValidRole(role); err != nil {
		return nil, err
	}
	want = want.Normalize()
	if len(want) == 0 {
		return nil, ErrNoResources
	}
	var exact mesos.Resources
	for _, w := range want {
		if w.Reserved() {
			if w.ReservationRole() != role {
				return nil, fmt.Errorf("%w: %s is reserved to %q, not %q", ErrNotReserved, w.Name, w.ReservationRole(), role)
			}
			if !w.Dynamic() {
				return nil, fmt.Errorf("%w: %s(%s)", ErrStaticReservation, w.Name, role)
			}
			exact = append(exact, w)
			continue
		}
		got, err := takeReserved(res, role, w)
		if err != nil {
			return nil, err
		}
		exact = append(exact, got...)
	}
	if !res.Contains(exact) {
		return nil, fmt.Errorf("%w: want %s reserved to %q, have %s", ErrNotReserved, want, role, res)
	}
	freed := make(mesos.Resources, 0, len(exact))
	for _, r := range exact {
		st := r.ReservationStack()
		r.Reservations, r.Reservation = st[:len(st)-1], nil
		if len(r.Reservations) == 0 {
			r.Reservations, r.Role = nil, ""
		} else {
			r.Role = r.Reservations[len(r.Reservations)-1].Role
		}
		freed = append(freed, r)
	}
	return res.Minus(exact).Plus(freed), nil
}

// takeReserved finds w's amount (an unreserved-looking resource) among
// res's dynamic reservations to role.
func takeReserved(res mesos.Resources, role string, w mesos.Resource) (mesos.Resources, error) {
	var out mesos.Resources
	var static bool
	need := w.Scalar != nil && w.Scalar.Value > 0
	ranges := []mesos.Range(nil)
	if w.Ranges != nil {
		ranges = w.Ranges.Range
	}
	left := 0.0
	if w.Scalar != nil {
		left = w.Scalar.Value
	}
	for _, r := range res {
		if r.Name != w.Name || r.ReservationRole() != role {
			continue
		}
		if !r.Dynamic() {
			static = true
			continue
		}
		switch {
		case need && r.Scalar != nil && left > epsilon:
			v := min(left, r.Scalar.Value)
			left -= v
			r.Scalar = &mesos.Scalar{Value: v}
			out = append(out, r)
		case r.Ranges != nil && len(ranges) > 0:
			var hit, miss []mesos.Range
			for _, want := range ranges {
				h, m := splitRange(want, r.Ranges.Range)
				hit, miss = append(hit, h...), append(miss, m...)
			}
			ranges = miss
			if len(hit) > 0 {
				r.Ranges = &mesos.RangeSet{Range: hit}
				out = append(out, r)
			}
		}
	}
	if left > epsilon || len(ranges) > 0 {
		if static {
			return nil, fmt.Errorf("%w: %s(%s)", ErrStaticReservation, w.Name, role)
		}
		return nil, fmt.Errorf("%w: %s reserved to %q is short of %s", ErrNotReserved, w.Name, role, mesos.Resources{w})
	}
	return out, nil
}

// splitRange splits want into the parts inside and outside have (have
// sorted and merged).
func splitRange(want mesos.Range, have []mesos.Range) (in, out []mesos.Range) {
	cur := want.Begin
	for _, h := range have {
		if h.End < cur || h.Begin > want.End {
			continue
		}
		if h.Begin > cur {
			out = append(out, mesos.Range{Begin: cur, End: h.Begin - 1})
			cur = h.Begin
		}
		end := min(h.End, want.End)
		in = append(in, mesos.Range{Begin: cur, End: end})
		if end == want.End {
			return in, out
		}
		cur = end + 1
	}
	return in, append(out, mesos.Range{Begin: cur, End: want.End})
}
