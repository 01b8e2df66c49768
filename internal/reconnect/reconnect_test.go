package reconnect

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLoopBacksOffAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var waits []time.Duration
	calls := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		Loop(ctx, func(context.Context) error {
			calls++
			if calls == 4 {
				cancel()
			}
			return errors.New("gone")
		}, func(err error, wait time.Duration) { waits = append(waits, wait) })
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Loop did not return after cancel")
	}
	if calls != 4 || len(waits) != 3 {
		t.Fatalf("calls=%d waits=%v", calls, waits)
	}
	for i, w := range waits {
		lo := First << i
		if w < lo || w > lo+lo/2 {
			t.Fatalf("wait %d = %s, want in [%s, %s]", i, w, lo, lo+lo/2)
		}
	}
}
