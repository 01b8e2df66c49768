package apps

import (
	"context"
	"fmt"
	"time"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// unreachableStrategy, as Marathon documents it: an instance whose agent
// the master can no longer reach (TASK_UNREACHABLE) still counts as one of
// the app's instances for inactiveAfterSeconds; then it is inactive and a
// replacement is launched (the unreachable task is kept, in case it comes
// back); after expungeAfterSeconds it is expunged: forgotten, and killed
// if it ever reports again. "disabled" never replaces and never expunges.
// When an unreachable task comes back RUNNING it counts again, and the
// surplus is killed by killSelection.
//
// The defaults are Marathon's documented ones (300 and 600 seconds), not
// an immediate replacement: an agent that is only briefly cut off keeps
// its tasks and nothing is launched twice. Apps that want Mesos' old
// TASK_LOST behaviour set {"inactiveAfterSeconds": 0}.

// Marathon's default unreachableStrategy.
const (
	defaultInactiveAfter = 300
	defaultExpungeAfter  = 600
)

// unreachablePolicy is an app's unreachableStrategy with defaults applied.
type unreachablePolicy struct {
	disabled        bool
	inactive, purge time.Duration
}

// policyOf reads an app's strategy, applying Marathon's defaults to what
// is missing (apps stored before the field existed have none).
func policyOf(app *marathon.App) unreachablePolicy {
	p := unreachablePolicy{inactive: defaultInactiveAfter * time.Second, purge: defaultExpungeAfter * time.Second}
	us := app.UnreachableStrategy
	if us == nil {
		return p
	}
	if us.Disabled {
		return unreachablePolicy{disabled: true}
	}
	if us.InactiveAfterSeconds != nil {
		p.inactive = time.Duration(*us.InactiveAfterSeconds) * time.Second
	}
	if us.ExpungeAfterSeconds != nil {
		p.purge = time.Duration(*us.ExpungeAfterSeconds) * time.Second
	}
	return p
}

// unreachablePhase is where an unreachable instance stands.
type unreachablePhase int

const (
	// phaseCounted: still one of the app's instances; nothing replaces it.
	phaseCounted unreachablePhase = iota
	// phaseInactive: replaced, but remembered in case it comes back.
	phaseInactive
	// phaseExpunged: forgotten; killed if it reports again.
	phaseExpunged
)

// phase says where an instance unreachable since since stands at now.
func (p unreachablePolicy) phase(since, now time.Time) unreachablePhase {
	if p.disabled {
		return phaseCounted
	}
	gone := now.Sub(since)
	switch {
	case gone >= p.purge && gone >= p.inactive:
		return phaseExpunged
	case gone >= p.inactive:
		return phaseInactive
	}
	return phaseCounted
}

// validateUnreachable checks an unreachableStrategy as Marathon does:
// "disabled" or non-negative seconds with expunge no earlier than inactive.
func validateUnreachable(us *marathon.UnreachableStrategy, v *validationError) {
	if us == nil || us.Disabled {
		return
	}
	if us.Value != "" {
		v.add("/unreachableStrategy", fmt.Sprintf(`must be "disabled" or an object, got %s`, us.Value))
		return
	}
	inactive, expunge := int64(defaultInactiveAfter), int64(defaultExpungeAfter)
	if us.InactiveAfterSeconds != nil {
		inactive = *us.InactiveAfterSeconds
		if inactive < 0 {
			v.add("/unreachableStrategy/inactiveAfterSeconds", fmt.Sprintf("got %d, expected 0 or more", inactive))
		}
	}
	if us.ExpungeAfterSeconds != nil {
		expunge = *us.ExpungeAfterSeconds
		if expunge < 0 {
			v.add("/unreachableStrategy/expungeAfterSeconds", fmt.Sprintf("got %d, expected 0 or more", expunge))
			return
		}
	}
	if expunge < inactive {
		v.add("/unreachableStrategy/expungeAfterSeconds", fmt.Sprintf("got %d, expected at least inactiveAfterSeconds (%d)", expunge, inactive))
	}
}

// defaultUnreachable fills in Marathon's defaults, so an app reads back
// with the strategy it runs under.
func defaultUnreachable(app *marathon.App) {
	us := app.UnreachableStrategy
	if us != nil && us.Disabled {
		return
	}
	out := marathon.UnreachableStrategy{}
	if us != nil {
		out = *us
	}
	if out.InactiveAfterSeconds == nil {
		n := int64(defaultInactiveAfter)
		out.InactiveAfterSeconds = &n
	}
	if out.ExpungeAfterSeconds == nil {
		n := int64(defaultExpungeAfter)
		out.ExpungeAfterSeconds = &n
	}
	app.UnreachableStrategy = &out
}

// sweepUnreachable moves unreachable tasks along their app's strategy:
// an inactive one stops counting (its replacement is launched on the next
// offer), an expunged one is forgotten (and its record deleted).
func (f *Framework) sweepUnreachable(ctx context.Context) {
	now := f.cfg.Clock()
	var forget []string
	f.mu.Lock()
	for appID, a := range f.apps {
		p := policyOf(&a.def)
		for id, t := range a.tasks {
			if t.state != mesos.TaskUnreachable || t.unreachableSince.IsZero() {
				continue
			}
			switch p.phase(t.unreachableSince, now) {
			case phaseExpunged:
				delete(a.tasks, id)
				if a.expunged == nil {
					a.expunged = map[string]bool{}
				}
				a.expunged[id] = true
				forget = append(forget, id)
				f.wantOffers = true
				f.metrics.unreachable.WithLabelValues("expunged").Inc()
				f.log.Info("unreachable task expunged", "app", appID, "task_id", id, "unreachable_for", now.Sub(t.unreachableSince))
			case phaseInactive:
				if !t.inactive {
					t.inactive = true
					f.wantOffers = true
					f.metrics.unreachable.WithLabelValues("inactive").Inc()
					f.log.Info("unreachable task inactive; replacing it", "app", appID, "task_id", id, "unreachable_for", now.Sub(t.unreachableSince))
				}
			}
		}
	}
	f.mu.Unlock()
	for _, id := range forget {
		if err := f.cfg.Store.Delete(ctx, keyTasks+id); err != nil {
			f.log.Error("could not delete task record", "task_id", id, "err", err)
		}
	}
}
