package apps

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/keelhq/keel/api/mesos"
)

// Marathon placement constraints: [field, operator] or [field, operator,
// value]. The field is "hostname" (the offer's hostname) or the name of an
// agent attribute; a task's value for the field is the one of the agent
// it was placed on. Everything here is pure: the framework hands in the
// offer and where the app's tasks already are.

// Constraint operators, as Marathon spells them.
const (
	opUnique  = "UNIQUE"
	opCluster = "CLUSTER"
	opGroupBy = "GROUP_BY"
	opLike    = "LIKE"
	opUnlike  = "UNLIKE"
	opMaxPer  = "MAX_PER"
	opIs      = "IS"
)

// fieldHostname selects the agent's hostname rather than an attribute
// ("@hostname" is Marathon's newer spelling of it).
const fieldHostname = "hostname"

// constraint is a validated constraint.
type constraint struct {
	Field, Op, Value string
	re               *regexp.Regexp // LIKE, UNLIKE
	n                int            // GROUP_BY (0 = no value), MAX_PER
}

// parseConstraint validates one constraint and compiles it. Its error is
// the message Marathon would put under /constraints(i).
func parseConstraint(c []string) (constraint, error) {
	if len(c) < 2 || len(c) > 3 {
		return constraint{}, fmt.Errorf("each constraint must have either 2 or 3 fields, got %d", len(c))
	}
	out := constraint{Field: c[0], Op: c[1]}
	hasValue := len(c) == 3
	if hasValue {
		out.Value = c[2]
	}
	if strings.TrimSpace(out.Field) == "" {
		return constraint{}, fmt.Errorf("constraint field must not be empty")
	}
	switch out.Op {
	case opUnique:
		if hasValue && out.Value != "" {
			return constraint{}, fmt.Errorf("UNIQUE does not accept a value")
		}
	case opCluster, opIs:
		if out.Value == "" {
			return constraint{}, fmt.Errorf("%s requires a non-empty value", out.Op)
		}
	case opGroupBy:
		if out.Value != "" {
			n, err := strconv.Atoi(out.Value)
			if err != nil || n < 1 {
				return constraint{}, fmt.Errorf("GROUP_BY may either have no value or a positive integer value, got %q", out.Value)
			}
			out.n = n
		}
	case opMaxPer:
		n, err := strconv.Atoi(out.Value)
		if err != nil || n < 1 {
			return constraint{}, fmt.Errorf("MAX_PER requires a positive integer value, got %q", out.Value)
		}
		out.n = n
	case opLike, opUnlike:
		if !hasValue {
			return constraint{}, fmt.Errorf("%s requires a regular expression value", out.Op)
		}
		// A full match, as Java's String.matches.
		re, err := regexp.Compile(`^(?:` + out.Value + `)$`)
		if err != nil {
			return constraint{}, fmt.Errorf("%q is not a valid regular expression: %w", out.Value, err)
		}
		out.re = re
	default:
		return constraint{}, fmt.Errorf("constraint operator must be one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS: got %q", out.Op)
	}
	return out, nil
}

// parseConstraints compiles an app's (validated) constraints, skipping
// any that do not parse: validation has already refused those.
func parseConstraints(cs [][]string) []constraint {
	var out []constraint
	for _, c := range cs {
		if pc, err := parseConstraint(c); err == nil {
			out = append(out, pc)
		}
	}
	return out
}

// agentPlace is where a task runs (or would run): the agent's hostname
// and its attributes rendered as text.
type agentPlace struct {
	Host  string
	Attrs map[string]string
}

// value is the place's value for a constraint field.
func (p agentPlace) value(field string) (string, bool) {
	if field == fieldHostname || field == "@"+fieldHostname {
		return p.Host, true
	}
	v, ok := p.Attrs[field]
	return v, ok
}

// offerPlace is the place an offer stands for.
func offerPlace(o mesos.Offer) agentPlace {
	p := agentPlace{Host: o.Hostname}
	if len(o.Attributes) > 0 {
		p.Attrs = make(map[string]string, len(o.Attributes))
		for _, a := range o.Attributes {
			p.Attrs[a.Name] = attributeText(a)
		}
	}
	return p
}

// attributeText renders an attribute value as constraints see it: text as
// it is, a scalar with at most three decimals and no trailing zeros
// ("2", "1.5"), as Marathon formats scalars.
func attributeText(a mesos.Attribute) string {
	switch {
	case a.Text != nil:
		return a.Text.Value
	case a.Scalar != nil:
		v := math.Round(a.Scalar.Value*1000) / 1000
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// meets reports whether placing one more task at p satisfies c, given the
// places of the app's live tasks (including those just placed).
func meets(c constraint, p agentPlace, placed []agentPlace) bool {
	v, ok := p.value(c.Field)
	if !ok {
		// A missing attribute satisfies only UNLIKE, as in Marathon.
		return c.Op == opUnlike
	}
	count := func(val string) int {
		n := 0
		for _, q := range placed {
			if qv, ok := q.value(c.Field); ok && qv == val {
				n++
			}
		}
		return n
	}
	switch c.Op {
	case opUnique:
		return count(v) == 0
	case opCluster, opIs:
		return v == c.Value
	case opLike:
		return c.re.MatchString(v)
	case opUnlike:
		return !c.re.MatchString(v)
	case opMaxPer:
		return count(v) < c.n
	case opGroupBy:
		groups := map[string]int{}
		for _, q := range placed {
			if qv, ok := q.value(c.Field); ok {
				groups[qv]++
			}
		}
		mine, seen := groups[v]
		if !seen {
			return true // a new group is always welcome
		}
		least := mine
		for _, n := range groups {
			least = min(least, n)
		}
		// An existing group takes another task only when every expected
		// group is known and it is (one of) the smallest.
		return len(groups) >= c.n && mine == least
	}
	return false
}

// meetsAll reports whether p satisfies every constraint.
func meetsAll(cs []constraint, p agentPlace, placed []agentPlace) bool {
	for _, c := range cs {
		if !meets(c, p, placed) {
			return false
		}
	}
	return true
}
