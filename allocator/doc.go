// Package allocator decides which framework is offered which part of each
// agent's unused resources, as Mesos' hierarchical DRF allocator does:
// quota guarantees first, then Dominant Resource Fairness applied level
// by level down the role tree ("eng", "eng/web", ...), weighted among
// siblings, and among the frameworks of the leaf role last. It honours
// quota limits (cutting offers down), the headroom unmet guarantees need,
// reservations (resources reserved to a role go only to its subtree),
// MULTI_ROLE frameworks (one client per role; an Offer names its role),
// suppression and per-agent offer filters. README.md has the pipeline.
//
// It also owns the pure halves of the RESERVE and UNRESERVE offer
// operations (Reserve, Unreserve, ValidRole), which validate and return
// the transformed resources.
//
// It is pure: Allocate takes the whole state (and the time as a value) and
// returns decisions. No I/O, no clock, no goroutines, no locks, no
// metrics; the master owns the state, calls Allocate on its allocation
// interval and on events, turns the decisions into offers and measures
// the cycle. It must not keep anything between cycles: all it knows is
// in State.
package allocator
