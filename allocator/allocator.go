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
func Allocate(st State) []Offer {
	var total [len(dominantKinds)]float64
	for _, a := range st.Agents {
		for i, k := range dominantKinds {
			total[i] += a.Total.Scalar(k)
		}
	}
	fws := make([]*fwState, 0, len(st.Frameworks))
	roles := map[string]*share{}
	for _, f := range st.Frameworks {
		role := f.Role
		if role == "" {
			role = "*"
		}
		fs := &fwState{id: f.ID, role: role, suppressed: f.Suppressed}
		fs.share.add(f.Allocated)
		if roles[role] == nil {
			roles[role] = &share{}
		}
		roles[role].add(f.Allocated)
		fws = append(fws, fs)
	}
	filtered := map[[2]string]bool{}
	for _, f := range st.Filters {
		if st.Now.Before(f.Until) {
			filtered[[2]string{f.FrameworkID, f.AgentID}] = true
		}
	}
	agents := append([]Agent(nil), st.Agents...)
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID < agents[j].ID })

	var out []Offer
	for _, a := range agents {
		if a.Available.Empty() {
			continue
		}
		var best *fwState
		var bestRole, bestFw float64
		for _, f := range fws {
			if f.suppressed || filtered[[2]string{f.id, a.ID}] {
				continue
			}
			w := st.Weights[f.role]
			if w <= 0 {
				w = 1
			}
			rs := roles[f.role].dominant(&total) / w
			fsh := f.share.dominant(&total)
			if best == nil || rs < bestRole || (rs == bestRole && (fsh < bestFw || (fsh == bestFw && f.id < best.id))) {
				best, bestRole, bestFw = f, rs, fsh
			}
		}
		if best == nil {
			continue
		}
		out = append(out, Offer{FrameworkID: best.id, AgentID: a.ID, Resources: a.Available})
		best.share.add(a.Available)
		roles[best.role].add(a.Available)
	}
	return out
}

type fwState struct {
	id, role   string
	suppressed bool
	share      share
}
