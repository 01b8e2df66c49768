package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Passive outlier ejection: a backend that fails ejectAfter times in a row
// (connect errors, transport errors, 5xx) gets no new requests for
// ejectBase, doubling up to ejectMax each time it fails again after coming
// back. One success clears it.
const (
	ejectAfter = 3
	ejectBase  = time.Second
	ejectMax   = 30 * time.Second
)

// outlier is the passive health state of one backend address. It lives
// with the backend's pooled client, outside the immutable table, so a
// table swap neither resets nor copies it. The request path reads two
// atomics; the mutex is taken only to record a failure or the first
// success after failures.
type outlier struct {
	until atomic.Int64 // ejected until, Unix nanoseconds (0 = never)
	dirty atomic.Bool  // failures recorded since the last success

	mu        sync.Mutex
	fails     int
	backoff   time.Duration // length of the last ejection (0 = none yet)
	ejections uint64
}

// available reports whether the backend may take new requests at now.
func (o *outlier) available(now int64) bool { return now >= o.until.Load() }

// success clears the failure streak and the backoff.
func (o *outlier) success() {
	if !o.dirty.Load() {
		return
	}
	o.mu.Lock()
	o.fails, o.backoff = 0, 0
	o.dirty.Store(false)
	o.mu.Unlock()
}

// failure records a failure at now and reports whether it ejected the
// backend. Failures of requests still in flight while it is ejected do
// not extend the ejection.
func (o *outlier) failure(now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fails++
	o.dirty.Store(true)
	if now.UnixNano() < o.until.Load() || o.fails < ejectAfter {
		return false
	}
	if o.backoff == 0 {
		o.backoff = ejectBase
	} else {
		o.backoff = min(2*o.backoff, ejectMax)
	}
	o.until.Store(now.Add(o.backoff).UnixNano())
	o.ejections++
	return true
}

// BackendStatus is one backend's passive health, as /v1/backends shows it.
type BackendStatus struct {
	Addr                string     `json:"addr"`
	State               string     `json:"state"` // "up", "failing" or "ejected"
	ConsecutiveFailures int        `json:"consecutive_failures"`
	EjectedUntil        *time.Time `json:"ejected_until,omitempty"`
	Ejections           uint64     `json:"ejections"`
	InFlight            int64      `json:"in_flight"`
}

func (o *outlier) status(addr string, inflight int64, now time.Time) BackendStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := BackendStatus{Addr: addr, State: "up", ConsecutiveFailures: o.fails, Ejections: o.ejections, InFlight: inflight}
	if o.fails > 0 {
		s.State = "failing"
	}
	if u := o.until.Load(); now.UnixNano() < u {
		t := time.Unix(0, u).UTC()
		s.State, s.EjectedUntil = "ejected", &t
	}
	return s
}
