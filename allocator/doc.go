// Package allocator decides which framework is offered which agent's
// unused resources: hierarchical Dominant Resource Fairness (roles first by
// weighted dominant share, then frameworks within a role by theirs),
// honouring suppression and per-agent offer filters.
//
// It is pure: Allocate takes the whole state (and the time as a value) and
// returns decisions. No I/O, no clock, no goroutines, no locks; the master
// owns the state, calls Allocate on its allocation interval and on events,
// and turns the decisions into offers.
//
// Quota, reservations and the benchmarks at cluster scale come with the
// master issue; the entry point stays the same.
package allocator
