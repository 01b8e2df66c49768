package allocator

import (
	"sort"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Agent is an agent as the allocator sees it.
type Agent struct {
	ID string
	// Total is everything the agent has.
	Total mesos.Resources
	// Available is Total minus what tasks use and outstanding offers hold.
	Available mesos.Resources
}

// Framework is a framework as the allocator sees it.
type Framework struct {
	ID   string
	Role string
	// Suppressed frameworks want no offers.
	Suppressed bool
	// Allocated is what its tasks and outstanding offers hold.
	Allocated mesos.Resources
}

// Filter keeps an agent's resources from a framework until Until (set when
// the framework declines an offer with refuse_seconds).
type Filter struct {
	FrameworkID string
	AgentID     string
	Until       time.Time
}

// State is the input of one allocation cycle.
type State struct {
	Agents     []Agent
	Frameworks []Framework
	Filters    []Filter
	// Weights per role; a role without one weighs 1.
	Weights map[string]float64
	Now     time.Time
}

// Offer is one decision: offer Resources of AgentID to FrameworkID.
type Offer struct {
	FrameworkID string
	AgentID     string
	Resources   mesos.Resources
}

// dominantKinds are the scalar resources fairness is computed over.
var dominantKinds = [...]string{"cpus", "mem", "disk", "gpus"}

type share struct {
	alloc [len(dominantKinds)]float64
}

func (s *share) add(r mesos.Resources) {
	for i, k := range dominantKinds {
		s.alloc[i] += r.Scalar(k)
	}
}

func (s *share) dominant(total *[len(dominantKinds)]float64) float64 {
	var d float64
	for i := range dominantKinds {
		if total[i] > 0 {
			if v := s.alloc[i] / total[i]; v > d {
				d = v
			}
		}
	}
	return d
}

// Allocate runs one allocation cycle. Each agent with available resources
// is offered whole to the eligible framework whose role has the lowest
// weighted dominant share, and within that role to the framework with the
// lowest dominant share (ties broken by ID, so results are deterministic).
// Shares are updated after every decision, so one cycle spreads agents
// fairly. Agents are visited in ID order.
//
// Cost: O(agents x frameworks) comparisons of cached shares; shares are
// recomputed only for the framework (and role) that just got an agent.
func Allocate(st State) []Offer {
	var total [len(dominantKinds)]float64
	for _, a := range st.Agents {
		for i, k := range dominantKinds {
			total[i] += a.Total.Scalar(k)
		}
	}
	roles := map[string]*roleState{}
	fws := make([]*fwState, 0, len(st.Frameworks))
	for _, f := range st.Frameworks {
		role := f.Role
		if role == "" {
			role = "*"
		}
		rs := roles[role]
		if rs == nil {
			w := st.Weights[role]
			if w <= 0 {
				w = 1
			}
			rs = &roleState{weight: w}
			roles[role] = rs
		}
		fs := &fwState{id: f.ID, role: rs, suppressed: f.Suppressed}
		fs.share.add(f.Allocated)
		rs.share.add(f.Allocated)
		fws = append(fws, fs)
	}
	for _, rs := range roles {
		rs.dom = rs.share.dominant(&total) / rs.weight
	}
	for _, f := range fws {
		f.dom = f.share.dominant(&total)
	}
	// Filters by agent, so the inner loop does no map lookups when an agent
	// has none.
	filtered := map[string]map[string]bool{}
	for _, f := range st.Filters {
		if st.Now.Before(f.Until) {
			if filtered[f.AgentID] == nil {
				filtered[f.AgentID] = map[string]bool{}
			}
			filtered[f.AgentID][f.FrameworkID] = true
		}
	}
	agents := append([]Agent(nil), st.Agents...)
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID < agents[j].ID })

	var out []Offer
	for _, a := range agents {
		if !hasAny(a.Available) {
			continue
		}
		skip := filtered[a.ID]
		var best *fwState
		for _, f := range fws {
			if f.suppressed || (skip != nil && skip[f.id]) {
				continue
			}
			if best == nil || f.role.dom < best.role.dom ||
				(f.role.dom == best.role.dom && (f.dom < best.dom || (f.dom == best.dom && f.id < best.id))) {
				best = f
			}
		}
		if best == nil {
			continue
		}
		out = append(out, Offer{FrameworkID: best.id, AgentID: a.ID, Resources: a.Available})
		best.share.add(a.Available)
		best.dom = best.share.dominant(&total)
		best.role.share.add(a.Available)
		best.role.dom = best.role.share.dominant(&total) / best.role.weight
	}
	return out
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

type roleState struct {
	weight float64
	share  share
	dom    float64
}

type fwState struct {
	id         string
	role       *roleState
	suppressed bool
	share      share
	dom        float64
}
