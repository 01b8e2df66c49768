// Package reconnect runs a long-lived session (a stream to the master)
// again and again until its context ends, waiting between attempts with
// jittered exponential backoff: 100ms doubling to 5s, reset after a
// session that lasted 10s. The agent, the apps framework and discovery
// all hold such a stream.
package reconnect

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff bounds.
const (
	First  = 100 * time.Millisecond
	Max    = 5 * time.Second
	Stable = 10 * time.Second // a session this long resets the backoff
)

// Loop calls session until ctx is done. After each session that ends
// while ctx is live, lost is told why and how long the wait is.
func Loop(ctx context.Context, session func(context.Context) error, lost func(err error, wait time.Duration)) {
	wait := First
	for ctx.Err() == nil {
		start := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > Stable {
			wait = First
		}
		d := wait + rand.N(wait/2+1)
		lost(err, d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, Max)
	}
}
