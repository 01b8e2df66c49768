package allocator

import (
	"math"
	"sort"
	"strings"
)

// node is a role in the role tree of one cycle. A role that has both
// frameworks and sub-roles gets a virtual child (self) holding its own
// frameworks, so that at every level only siblings compete: the role's
// own frameworks, taken together with weight 1, against its sub-roles.
type node struct {
	role     string // full path; a self node carries its parent's
	parent   *node
	children []*node   // sorted by (dom, role); nil for a leaf
	clients  []*client // leaves only, sorted by (dom, framework ID)
	pos      int       // index in parent.children
	self     bool
	weight   float64
	// alloc is allocated to the subtree (shares and quota); unalloc is
	// reserved to the subtree and not allocated (quota only).
	alloc, unalloc []float64
	// extra is allocated to the role by frameworks no longer in it.
	extra []float64
	dom   float64 // weighted dominant share of alloc
	// guar and lim are the role's own quota (nil without); lim holds
	// +Inf for unlimited kinds.
	guar, lim []float64
	// quota: this node or an ancestor has a quota.
	quota bool
	// guarded: this node, an ancestor or a descendant has a guarantee.
	guarded bool
	// top is the topmost ancestor-or-self with a guarantee.
	top    *node
	active int // unsuppressed clients in the subtree
}

// client is one framework in one of its roles.
type client struct {
	fw, role   string
	node       *node
	pos        int // index in node.clients
	alloc      []float64
	dom        float64
	suppressed bool
	stamp      int // agent and phase it last got an offer in
}

// get returns the node of role, creating it and its ancestors.
func (c *cycle) get(role string) *node {
	if n := c.nodes[role]; n != nil {
		return n
	}
	parent := c.root
	if i := strings.LastIndexByte(role, '/'); i > 0 {
		parent = c.get(role[:i])
	}
	nk := len(c.kinds)
	n := &node{role: role, parent: parent, weight: 1, alloc: make([]float64, nk), unalloc: make([]float64, nk)}
	parent.children = append(parent.children, n)
	c.nodes[role] = n
	return n
}

// nearest returns the node of role or of its nearest ancestor that has
// one, or nil.
func (c *cycle) nearest(role string) *node {
	for {
		if n := c.nodes[role]; n != nil {
			return n
		}
		i := strings.LastIndexByte(role, '/')
		if i < 0 {
			return nil
		}
		role = role[:i]
	}
}

// eachRole calls fn with each distinct role of f, in order, "" read as
// "*", without allocating.
func eachRole(f *Framework, fn func(i int, role string)) {
	if len(f.Roles) == 0 {
		fn(0, starred(f.Role))
		return
	}
	i := 0
	for j, r := range f.Roles {
		r = starred(r)
		dup := false
		for _, o := range f.Roles[:j] {
			dup = dup || starred(o) == r
		}
		if !dup {
			fn(i, r)
			i++
		}
	}
}

func hasRole(f *Framework, role string) bool {
	found := false
	eachRole(f, func(_ int, r string) { found = found || r == role })
	return found
}

func starred(role string) string {
	if role == "" {
		return "*"
	}
	return role
}

func positive(v []float64) bool {
	for _, x := range v {
		if x > 0 {
			return true
		}
	}
	return false
}

// buildTree creates the nodes and clients of st, with their quota.
func (c *cycle) buildTree(st *State) {
	nk, total := len(c.kinds), 0
	for i := range st.Frameworks {
		eachRole(&st.Frameworks[i], func(int, string) { total++ })
	}
	// One slab for the clients and one for their vectors.
	all := make([]client, 0, total)
	vecs := make([]float64, total*nk)
	for i := range st.Frameworks {
		f := &st.Frameworks[i]
		eachRole(f, func(j int, role string) {
			n := c.get(role)
			sup := f.Suppressed
			for _, r := range f.SuppressedRoles {
				sup = sup || starred(r) == role
			}
			all = append(all, client{fw: f.ID, role: role, node: n, suppressed: sup})
			cl := &all[len(all)-1]
			cl.alloc, vecs = vecs[:nk:nk], vecs[nk:]
			switch {
			case f.AllocatedByRole != nil:
				c.vecInto(cl.alloc, f.AllocatedByRole[role])
				if role == "*" {
					c.vecInto(cl.alloc, f.AllocatedByRole[""])
				}
			case j == 0:
				c.vecInto(cl.alloc, f.Allocated)
			}
			n.clients = append(n.clients, cl)
		})
		// Sorted, so that float sums do not depend on map order.
		byRole := make([]string, 0, len(f.AllocatedByRole))
		for role := range f.AllocatedByRole {
			byRole = append(byRole, role)
		}
		sort.Strings(byRole)
		for _, role := range byRole {
			res := f.AllocatedByRole[role]
			role = starred(role)
			if hasRole(f, role) {
				continue
			}
			n := c.get(role)
			if n.extra == nil {
				n.extra = make([]float64, len(c.kinds))
			}
			for k, v := range c.vec(res) {
				n.extra[k] += v
			}
		}
	}
	for role, q := range st.Quota {
		n := c.get(role)
		if g := c.vec(q.Guarantees); positive(g) {
			n.guar = g
		}
		if len(q.Limits) > 0 {
			n.lim = make([]float64, len(c.kinds))
			for k := range n.lim {
				n.lim[k] = math.Inf(1)
			}
			for _, r := range q.Limits {
				if k := c.kindOf(r.Name); k >= 0 && r.Scalar != nil {
					n.lim[k] = r.Scalar.Value
				}
			}
		}
	}
	for role, n := range c.nodes {
		if w := st.Weights[role]; w > 0 {
			n.weight = w
		}
	}
	// Self nodes, once every role exists.
	for _, n := range c.nodes {
		if len(n.clients) > 0 && n.children != nil {
			v := &node{role: n.role, parent: n, self: true, weight: 1, clients: n.clients,
				alloc: make([]float64, len(c.kinds)), unalloc: make([]float64, len(c.kinds))}
			for _, cl := range v.clients {
				cl.node = v
			}
			n.clients = nil
			n.children = append(n.children, v)
		}
	}
	for i := range all {
		cl := &all[i]
		for n := cl.node; n != nil; n = n.parent {
			for k, v := range cl.alloc {
				n.alloc[k] += v
			}
			if !cl.suppressed {
				n.active++
			}
		}
	}
	for _, n := range c.nodes {
		if n.extra == nil {
			continue
		}
		for m := n; m != nil; m = m.parent {
			for k, v := range n.extra {
				m.alloc[k] += v
			}
		}
	}
}

// finishTree derives the quota flags, the shares and the sort orders,
// once allocations and reservations are in.
func (c *cycle) finishTree() {
	var walk func(n *node, quota bool, top *node) bool
	walk = func(n *node, quota bool, top *node) bool {
		quota = quota || n.guar != nil || n.lim != nil
		n.quota = quota
		if top == nil && n.guar != nil {
			top = n
			c.tops = append(c.tops, n)
		}
		n.top = top
		guarded := top != nil
		for _, ch := range n.children {
			if walk(ch, quota, top) {
				guarded = true
			}
		}
		n.guarded = guarded
		if n.parent != nil {
			n.dom = dominant(n.alloc, c.total, n.weight)
		}
		for _, cl := range n.clients {
			cl.dom = dominant(cl.alloc, c.total, 1)
		}
		sort.Slice(n.children, func(i, j int) bool { return nodeLess(n.children[i], n.children[j]) })
		for i, ch := range n.children {
			ch.pos = i
		}
		sort.Slice(n.clients, func(i, j int) bool { return clientLess(n.clients[i], n.clients[j]) })
		for i, cl := range n.clients {
			cl.pos = i
		}
		return guarded
	}
	// The root is no role: it has no quota and is guarded if any role is.
	c.root.guarded = false
	for _, ch := range c.root.children {
		if walk(ch, false, nil) {
			c.root.guarded = true
		}
	}
	sort.Slice(c.tops, func(i, j int) bool { return c.tops[i].role < c.tops[j].role })
	sort.Slice(c.root.children, func(i, j int) bool { return nodeLess(c.root.children[i], c.root.children[j]) })
	for i, ch := range c.root.children {
		ch.pos = i
	}
}

func nodeLess(a, b *node) bool {
	if a.dom != b.dom {
		return a.dom < b.dom
	}
	return a.role < b.role
}

func clientLess(a, b *client) bool {
	if a.dom != b.dom {
		return a.dom < b.dom
	}
	return a.fw < b.fw
}

// reposition restores p.children's order after ch's share changed.
func (p *node) reposition(ch *node) {
	s, i := p.children, ch.pos
	for i+1 < len(s) && nodeLess(s[i+1], ch) {
		s[i] = s[i+1]
		s[i].pos = i
		i++
	}
	for i > 0 && nodeLess(ch, s[i-1]) {
		s[i] = s[i-1]
		s[i].pos = i
		i--
	}
	s[i], ch.pos = ch, i
}

// moveClient restores n.clients' order after cl's share changed.
func (n *node) moveClient(cl *client) {
	s, i := n.clients, cl.pos
	for i+1 < len(s) && clientLess(s[i+1], cl) {
		s[i] = s[i+1]
		s[i].pos = i
		i++
	}
	for i > 0 && clientLess(cl, s[i-1]) {
		s[i] = s[i-1]
		s[i].pos = i
		i--
	}
	s[i], cl.pos = cl, i
}
