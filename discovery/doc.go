// Package discovery keeps a gateway's view of the cluster current: it holds
// one operator-API SUBSCRIBE stream to the master, rebuilds its model from
// the SUBSCRIBED state after every (re)connect, applies the incremental
// events that follow, and publishes an immutable snapshot.Snapshot to its
// consumers (dns, proxy) after every change.
//
// Bursts of events coalesce: events are applied to the model as they
// arrive, and one publisher goroutine builds and publishes a snapshot
// whenever the model changed since the last one, so a build never lags
// more than one build behind the stream. While no master is reachable the
// last snapshot stays published; consumers keep serving it.
//
// It must not: poll full state on a timer, hand out mutable state, or block
// the stream on a slow consumer (consumers must return quickly from their
// update callbacks; dns and proxy swap pointers).
package discovery
