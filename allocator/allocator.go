package allocator

import (
	"math"
	"sort"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Agent is an agent as the allocator sees it.
type Agent struct {
	ID string
	// Total is everything the agent has, reserved or not.
	Total mesos.Resources
	// Available is Total minus what tasks use and outstanding offers hold.
	// Reserved resources in it (see mesos.Resource.ReservationRole) are
	// offered only to their role's subtree, and count as that role's
	// consumption for quota.
	Available mesos.Resources
}

// Framework is a framework as the allocator sees it. One framework
// subscribed to several roles (Mesos' MULTI_ROLE) competes in each of
// them separately, as one client per role.
type Framework struct {
	ID string
	// Role is the framework's role when it has only one ("" means "*").
	Role string
	// Roles are the roles of a MULTI_ROLE framework; when set, Role is
	// ignored.
	Roles []string
	// Suppressed frameworks want no offers in any role.
	Suppressed bool
	// SuppressedRoles are roles the framework wants no offers in (Mesos'
	// SUPPRESS call with roles); it still counts in their shares.
	SuppressedRoles []string
	// Allocated is what its tasks and outstanding offers hold. It counts
	// for the framework's first role; use AllocatedByRole for a framework
	// with several roles.
	Allocated mesos.Resources
	// AllocatedByRole is what its tasks and outstanding offers hold, per
	// role they were allocated to (the role an Offer named). When set,
	// Allocated is ignored. Roles here the framework no longer subscribes
	// to still count for their role's share and quota.
	AllocatedByRole map[string]mesos.Resources
}

// Filter keeps an agent's resources from a framework until Until (set when
// the framework declines an offer with refuse_seconds).
type Filter struct {
	FrameworkID string
	AgentID     string
	// Role limits the filter to the framework's client in that role (the
	// declined offer's role); "" filters all its roles.
	Role  string
	Until time.Time
}

// Quota bounds what a role's subtree consumes. Consumption is what is
// allocated to the subtree plus what is reserved to it and not allocated
// (Mesos 1.9+ semantics). Only scalars count; a name missing from a list
// is unconstrained.
type Quota struct {
	// Guarantees are met before any fair sharing, out of unreserved
	// resources, and held back from other roles (headroom) while unmet.
	Guarantees mesos.Resources
	// Limits are never exceeded by offers of unreserved resources.
	Limits mesos.Resources
}

// State is the input of one allocation cycle.
type State struct {
	Agents     []Agent
	Frameworks []Framework
	Filters    []Filter
	// Weights per role path ("eng", "eng/frontend"); a role without one
	// weighs 1. A weight counts among the role's siblings only.
	Weights map[string]float64
	// Quota per role path.
	Quota map[string]Quota
	Now   time.Time
}

// Offer is one decision: offer Resources of AgentID to FrameworkID,
// allocated to its role Role.
type Offer struct {
	FrameworkID string
	AgentID     string
	Role        string
	Resources   mesos.Resources
}

// dominantKinds are the scalar resources fairness is computed over; they
// are the first kinds of every cycle, quota may add more.
var dominantKinds = [...]string{"cpus", "mem", "disk", "gpus"}

// Allocate runs one allocation cycle in two phases over the agents (in ID
// order):
//
//  1. Guarantees: while some role's subtree consumes less than its
//     quota guarantee, each role with such an unmet guarantee of its own
//     is offered, in share order, unreserved resources cut down to what
//     it and its guaranteed ancestors still miss (plus what is reserved
//     to it).
//  2. Fair share: each agent's remaining resources go to the client
//     (framework, role) found by walking the role tree from the top,
//     taking at each level the child with the lowest weighted dominant
//     share, and in the leaf role the framework with the lowest dominant
//     share in that role (ties broken by name, so results are
//     deterministic). Whatever that client cannot take (reserved to other
//     roles, beyond its limits) goes on to the next one.
//
// In both phases unreserved scalars are cut to the role's remaining
// limits and to the headroom that unmet guarantees of other roles need;
// if a cut leaves nothing of a kind, the role gets no unreserved
// resources of that agent (a task cannot start on memory alone), only
// what is reserved to it. Shares are updated after every decision.
//
// Cost: per agent, a walk down the tree of cached shares (a few
// comparisons per level); only the shares on the path of a decision are
// recomputed.
func Allocate(st State) []Offer {
	c := newCycle(&st)
	if c.guarded {
		for i := range c.agents {
			if !c.guarded {
				break
			}
			c.allocateAgent(i, 1)
		}
	}
	for i := range c.agents {
		c.allocateAgent(i, 2)
	}
	return c.out
}

// hasAny reports whether rs holds any positive scalar or any range,
// without allocating.
func hasAny(rs mesos.Resources) bool {
	for _, r := range rs {
		if (r.Scalar != nil && r.Scalar.Value > 0) || (r.Ranges != nil && len(r.Ranges.Range) > 0) {
			return true
		}
	}
	return false
}

// epsilon matches mesos' scalar precision.
const epsilon = 0.0005

// cycle is the working state of one Allocate call.
type cycle struct {
	kinds []string
	total []float64 // cluster totals, for shares
	pool  []float64 // unreserved and not yet offered, for headroom
	// required is the sum of the unmet guarantees of tops.
	required []float64
	tops     []*node
	guarded  bool // some guarantee is unmet
	root     *node
	nodes    map[string]*node
	agents   []Agent
	filters  map[string][]Filter
	// rem holds, per agent touched by phase 1, what is left of each entry
	// of Available (1/0 for ranges).
	rem [][]float64
	// merge finds phase-1 offers a phase-2 decision adds to.
	merge map[mergeKey]int
	out   []Offer

	// per-agent scratch
	left []float64
	kind []int
	resv []string
	take []float64
	gtd  []bool
	d    []float64
}

type mergeKey struct {
	c     *client
	agent int
}

func (c *cycle) kindOf(name string) int {
	for i, k := range c.kinds {
		if k == name {
			return i
		}
	}
	return -1
}

func (c *cycle) vec(rs mesos.Resources) []float64 {
	v := make([]float64, len(c.kinds))
	c.vecInto(v, rs)
	return v
}

// vecInto adds the scalars of rs to v, by kind.
func (c *cycle) vecInto(v []float64, rs mesos.Resources) {
	for _, r := range rs {
		if r.Scalar != nil {
			if k := c.kindOf(r.Name); k >= 0 {
				v[k] += r.Scalar.Value
			}
		}
	}
}

func newCycle(st *State) *cycle {
	c := &cycle{nodes: map[string]*node{}}
	c.kinds = append(c.kinds, dominantKinds[:]...)
	var extra []string
	for _, q := range st.Quota {
		for _, rs := range []mesos.Resources{q.Guarantees, q.Limits} {
			for _, r := range rs {
				if r.Scalar != nil && c.kindOf(r.Name) < 0 {
					extra = append(extra, r.Name)
					c.kinds = append(c.kinds, r.Name)
				}
			}
		}
	}
	sort.Strings(extra)
	c.kinds = append(c.kinds[:len(dominantKinds)], extra...)
	nk := len(c.kinds)
	c.total = make([]float64, nk)
	c.pool = make([]float64, nk)
	c.required = make([]float64, nk)
	c.d = make([]float64, nk)
	c.root = &node{alloc: make([]float64, nk), unalloc: make([]float64, nk), weight: 1}

	c.buildTree(st)

	for _, a := range st.Agents {
		for _, r := range a.Total {
			if r.Scalar != nil {
				if k := c.kindOf(r.Name); k >= 0 {
					c.total[k] += r.Scalar.Value
				}
			}
		}
		for _, r := range a.Available {
			if r.Scalar == nil {
				continue
			}
			k := c.kindOf(r.Name)
			if k < 0 {
				continue
			}
			if !r.Reserved() {
				c.pool[k] += r.Scalar.Value
				continue
			}
			for n := c.nearest(r.ReservationRole()); n != nil; n = n.parent {
				n.unalloc[k] += r.Scalar.Value
			}
		}
	}
	c.finishTree()
	c.updateRequired()

	c.filters = map[string][]Filter{}
	for _, f := range st.Filters {
		if st.Now.Before(f.Until) {
			c.filters[f.AgentID] = append(c.filters[f.AgentID], f)
		}
	}
	c.agents = make([]Agent, 0, len(st.Agents))
	for _, a := range st.Agents {
		if hasAny(a.Available) {
			c.agents = append(c.agents, a)
		}
	}
	sort.Slice(c.agents, func(i, j int) bool { return c.agents[i].ID < c.agents[j].ID })
	// Most agents make one offer; growing the result would copy it.
	c.out = make([]Offer, 0, len(c.agents))
	if c.guarded {
		c.rem = make([][]float64, len(c.agents))
		c.merge = map[mergeKey]int{}
	}
	return c
}

// updateRequired recomputes the headroom unmet guarantees need.
func (c *cycle) updateRequired() {
	if len(c.tops) == 0 {
		return
	}
	clear(c.required)
	for _, t := range c.tops {
		for k, g := range t.guar {
			if need := g - t.alloc[k] - t.unalloc[k]; need > epsilon {
				c.required[k] += need
			}
		}
	}
	c.guarded = false
	for _, n := range c.nodes {
		if n.guar == nil || n.active == 0 {
			continue
		}
		for k, g := range n.guar {
			if g-n.alloc[k]-n.unalloc[k] > epsilon {
				c.guarded = true
				return
			}
		}
	}
}

// allocateAgent hands out agent i's resources in phase 1 (guarantees) or
// 2 (fair share).
func (c *cycle) allocateAgent(i, phase int) {
	a := &c.agents[i]
	n := len(a.Available)
	c.left = grow(c.left, n)
	c.take = grow(c.take, n)
	if cap(c.kind) < n {
		c.kind = make([]int, n)
		c.resv = make([]string, n)
		c.gtd = make([]bool, n)
	}
	c.kind, c.resv, c.gtd = c.kind[:n], c.resv[:n], c.gtd[:n]
	untouched := true
	if c.rem != nil && c.rem[i] != nil {
		copy(c.left, c.rem[i])
		untouched = false
	} else {
		for j, r := range a.Available {
			c.left[j] = amount(r)
		}
	}
	for j, r := range a.Available {
		c.kind[j] = -1
		if r.Scalar != nil {
			c.kind[j] = c.kindOf(r.Name)
		}
		c.resv[j] = r.ReservationRole()
	}
	filters := c.filters[a.ID]
	stamp := i*2 + phase
	for {
		cl := c.pick(c.root, phase, filters, stamp)
		if cl == nil {
			break
		}
		cl.stamp = stamp
		c.apply(cl, i, phase, untouched)
		untouched = false
		if !anyLeft(c.left) {
			break
		}
		if phase == 1 && !c.guarded {
			break
		}
	}
	if phase == 1 && !untouched {
		c.rem[i] = append([]float64(nil), c.left...)
	}
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func amount(r mesos.Resource) float64 {
	switch {
	case r.Scalar != nil:
		return r.Scalar.Value
	case r.Ranges != nil && len(r.Ranges.Range) > 0:
		return 1
	}
	return 0
}

func anyLeft(v []float64) bool {
	for _, x := range v {
		if x > epsilon {
			return true
		}
	}
	return false
}

// pick returns the first client of n's subtree, in share order, that may
// take something of the current agent; c.take then holds what.
func (c *cycle) pick(n *node, phase int, filters []Filter, stamp int) *client {
	if n.active == 0 || (phase == 1 && !n.guarded) {
		return nil
	}
	if n.children == nil {
		if len(n.clients) == 0 || !c.offerable(n, phase) {
			return nil
		}
	next:
		for _, cl := range n.clients {
			if cl.suppressed || cl.stamp == stamp {
				continue
			}
			for _, f := range filters {
				if f.FrameworkID == cl.fw && (f.Role == "" || f.Role == cl.role) {
					continue next
				}
			}
			return cl
		}
		return nil
	}
	for _, ch := range n.children {
		if cl := c.pick(ch, phase, filters, stamp); cl != nil {
			return cl
		}
	}
	return nil
}

// offerable fills c.take with what leaf n's role may take of the current
// agent in phase, and reports whether that is worth an offer.
func (c *cycle) offerable(n *node, phase int) bool {
	role := n.role
	own := n // the role's own node, whose guarantee phase 1 serves
	if n.self {
		own = n.parent
	}
	var anyTake, guaranteed, cut bool
	for j := range c.left {
		c.take[j] = 0
		c.gtd[j] = false
		if c.left[j] <= epsilon {
			continue
		}
		if rr := c.resv[j]; rr != "*" {
			if within(rr, role) {
				c.take[j] = c.left[j]
				anyTake = true
			}
			continue
		}
		k := c.kind[j]
		if k < 0 {
			c.take[j] = c.left[j]
			anyTake = true
			continue
		}
		amt := c.left[j]
		if n.quota {
			amt = math.Min(amt, limitLeft(n, k))
			if phase == 1 && own.guar != nil && own.guar[k] > 0 {
				if g := math.Min(amt, needOf(n, k)); g > epsilon {
					c.take[j] = g
					c.gtd[j] = true
					anyTake, guaranteed = true, true
					continue
				}
			}
		}
		if r := c.required[k]; r > 0 {
			// What this role takes of its top's unmet guarantee is
			// headroom used as meant.
			var mine float64
			if n.top != nil {
				mine = math.Max(0, n.top.guar[k]-n.top.alloc[k]-n.top.unalloc[k])
			}
			amt = math.Min(amt, c.pool[k]-r+mine)
		}
		if amt <= epsilon {
			cut = true
			continue
		}
		c.take[j] = amt
		anyTake = true
	}
	if cut {
		// Without the kind that was cut to nothing, the unreserved rest
		// is of no use to the role: leave it to others. What it is
		// guaranteed stays.
		anyTake = false
		for j := range c.take {
			if c.resv[j] == "*" && !c.gtd[j] {
				c.take[j] = 0
			}
			anyTake = anyTake || c.take[j] > 0
		}
	}
	if phase == 1 {
		return guaranteed && anyTake
	}
	return anyTake
}

// needOf returns the smallest unmet guarantee of kind k over n and its
// ancestors that have one, so that phase 1 never takes a role beyond the
// guarantee of any of its ancestors.
func needOf(n *node, k int) float64 {
	need := math.Inf(1)
	for ; n != nil; n = n.parent {
		if n.guar != nil && n.guar[k] > 0 {
			need = math.Min(need, math.Max(0, n.guar[k]-n.alloc[k]-n.unalloc[k]))
		}
	}
	return need
}

// limitLeft returns how much of kind k n's subtree may still consume
// under its own and its ancestors' limits.
func limitLeft(n *node, k int) float64 {
	left := math.Inf(1)
	for ; n != nil; n = n.parent {
		if n.lim != nil {
			left = math.Min(left, n.lim[k]-n.alloc[k]-n.unalloc[k])
		}
	}
	return left
}

// within reports whether role is ancestor or role itself.
func within(ancestor, role string) bool {
	return role == ancestor || (len(role) > len(ancestor) && role[len(ancestor)] == '/' && role[:len(ancestor)] == ancestor)
}

// apply records the decision to offer c.take of agent i to cl.
func (c *cycle) apply(cl *client, i, phase int, untouched bool) {
	a := &c.agents[i]
	whole := untouched
	for j := range c.take {
		if c.take[j] != c.left[j] {
			whole = false
			break
		}
	}
	var res mesos.Resources
	if whole {
		// The common case: the whole agent, as it came (no allocation).
		res = a.Available
	} else {
		var cnt int
		for _, t := range c.take {
			if t > 0 {
				cnt++
			}
		}
		res = make(mesos.Resources, 0, cnt)
		scalars := make([]mesos.Scalar, 0, cnt)
		for j, t := range c.take {
			if t <= 0 {
				continue
			}
			r := a.Available[j]
			if r.Scalar != nil {
				scalars = append(scalars, mesos.Scalar{Value: math.Round(t*1000) / 1000})
				r.Scalar = &scalars[len(scalars)-1]
			}
			res = append(res, r)
		}
	}

	clear(c.d)
	for j, t := range c.take {
		if t <= 0 {
			continue
		}
		c.left[j] -= t
		k := c.kind[j]
		if k < 0 {
			continue
		}
		c.d[k] += t
		if rr := c.resv[j]; rr == "*" {
			c.pool[k] -= t
		} else {
			for n := c.nearest(rr); n != nil; n = n.parent {
				n.unalloc[k] -= t
			}
		}
	}
	for k, v := range c.d {
		cl.alloc[k] += v
	}
	cl.dom = dominant(cl.alloc, c.total, 1)
	cl.node.moveClient(cl)
	for n := cl.node; n != nil; n = n.parent {
		for k, v := range c.d {
			n.alloc[k] += v
		}
		if n.parent != nil {
			n.dom = dominant(n.alloc, c.total, n.weight)
			n.parent.reposition(n)
		}
	}
	c.updateRequired()

	if phase == 2 && c.merge != nil {
		if at, ok := c.merge[mergeKey{cl, i}]; ok {
			c.out[at].Resources = c.out[at].Resources.Plus(res)
			return
		}
	}
	if phase == 1 {
		c.merge[mergeKey{cl, i}] = len(c.out)
	}
	c.out = append(c.out, Offer{FrameworkID: cl.fw, AgentID: a.ID, Role: cl.role, Resources: res})
}

// dominant is the dominant share of alloc over total, divided by weight.
// Only the dominant kinds count.
func dominant(alloc, total []float64, weight float64) float64 {
	var d float64
	for k := range dominantKinds {
		if total[k] > 0 {
			if v := alloc[k] / total[k]; v > d {
				d = v
			}
		}
	}
	return d / weight
}
