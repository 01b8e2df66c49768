package apps

import "math"

// Rolling upgrades, as Marathon runs them: when an app's definition
// changes, tasks of the new version are started before tasks of the old
// one are killed, never dropping below minimumHealthCapacity x instances
// running (ready) tasks and never going above (1 + maximumOverCapacity) x
// instances tasks in all. The planner is pure; the framework calls it
// after every event of the app.

// Marathon's default upgrade strategy.
const (
	defaultMinHealth = 1.0
	defaultMaxOver   = 1.0
)

// rollout is the state of an app in a deployment.
type rollout struct {
	Instances int     // wanted instances of the new version
	MinHealth float64 // minimumHealthCapacity
	MaxOver   float64 // maximumOverCapacity
	Old       int     // live tasks of older versions (not being killed)
	New       int     // live tasks of the new version (launched, not killed)
	NewReady  int     // of New, those running (and healthy)
	OldReady  int     // of Old, those running (and healthy)
}

// step returns how many new tasks to launch and old tasks to kill now.
func (r rollout) step() (launch, kill int) {
	maxTotal := int(math.Floor(float64(r.Instances) * (1 + r.MaxOver)))
	if maxTotal < r.Instances {
		maxTotal = r.Instances
	}
	minReady := int(math.Ceil(float64(r.Instances) * r.MinHealth))
	if minReady > r.Instances {
		minReady = r.Instances
	}
	// Kill old tasks while enough tasks stay ready without them.
	ready := r.NewReady + r.OldReady
	kill = min(r.Old, max(0, ready-minReady))
	// A not-ready old task can always go: it does not count as capacity.
	kill = max(kill, min(r.Old, r.Old-r.OldReady))
	// New tasks fill what the over-capacity bound leaves.
	launch = min(r.Instances-r.New, maxTotal-(r.Old-kill)-r.New)
	if launch < 0 {
		launch = 0
	}
	// With no room to launch and no ready surplus (min health 1, max over
	// 0), Marathon kills one old task first to make progress.
	if launch == 0 && kill == 0 && r.Old > 0 && r.New < r.Instances {
		kill = 1
	}
	return launch, kill
}
