package apps

import "testing"

// TestRolloutBounds simulates whole upgrades step by step (new tasks
// become ready one step after launch) and checks both capacity bounds at
// every step and that every upgrade finishes.
func TestRolloutBounds(t *testing.T) {
	cases := []struct {
		instances          int
		minHealth, maxOver float64
	}{
		{1, 1, 1}, {3, 1, 1}, {10, 1, 1}, {10, 1, 0.2}, {10, 0.5, 0}, {10, 0, 0}, {4, 1, 0}, {5, 0.8, 0.4}, {0, 1, 1},
	}
	for _, c := range cases {
		r := rollout{Instances: c.instances, MinHealth: c.minHealth, MaxOver: c.maxOver, Old: c.instances, OldReady: c.instances}
		maxTotal := int(float64(c.instances) * (1 + c.maxOver))
		minReady := int(float64(c.instances)*c.minHealth + 0.999999)
		pendingNew := 0
		for step := 0; r.Old > 0 || r.New < c.instances || r.NewReady < c.instances; step++ {
			if step > 100 {
				t.Fatalf("%+v: no progress: %+v", c, r)
			}
			// Launched tasks become ready.
			r.NewReady += pendingNew
			pendingNew = 0
			launch, kill := r.step()
			r.Old -= kill
			r.OldReady = min(r.OldReady, r.Old)
			r.New += launch
			pendingNew = launch
			total := r.Old + r.New
			if total > max(maxTotal, c.instances) {
				t.Fatalf("%+v step %d: %d tasks exceed %d", c, step, total, maxTotal)
			}
			// Minimum health may be undercut only by Marathon's progress rule
			// (min 1, max over 0), one task at a time.
			if ready := r.OldReady + r.NewReady; ready < minReady-1 || (ready < minReady && c.maxOver > 0) {
				t.Fatalf("%+v step %d: %d ready below %d", c, step, ready, minReady)
			}
		}
	}
}

func TestRolloutStep(t *testing.T) {
	for _, c := range []struct {
		r            rollout
		launch, kill int
	}{
		// Defaults (1, 1): launch all new, kill nothing yet.
		{rollout{Instances: 3, MinHealth: 1, MaxOver: 1, Old: 3, OldReady: 3}, 3, 0},
		// Two new ready: two old can go.
		{rollout{Instances: 3, MinHealth: 1, MaxOver: 1, Old: 3, OldReady: 3, New: 3, NewReady: 2}, 0, 2},
		// Half health, no over capacity: kill half first.
		{rollout{Instances: 4, MinHealth: 0.5, MaxOver: 0, Old: 4, OldReady: 4}, 2, 2},
		// Old tasks that are not ready go at once.
		{rollout{Instances: 2, MinHealth: 1, MaxOver: 0, Old: 2, OldReady: 0}, 2, 2},
	} {
		l, k := c.r.step()
		if l != c.launch || k != c.kill {
			t.Errorf("%+v: launch %d kill %d, want %d %d", c.r, l, k, c.launch, c.kill)
		}
	}
}
