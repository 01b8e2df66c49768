package dns

import (
	"net"
	"sync"
	"time"
)

// Response-rate limiting: each client prefix (IPv4 /24, IPv6 /56) has a
// token bucket of rate responses a second (burst: one second's worth).
// A response without a token is dropped, except every slip-th dropped one,
// which goes out truncated (TC, no records) so a real client behind a
// spoofed flood can still retry over TCP. The limiter is pure: the caller
// passes the time, so tests drive it with a fake clock.

// verdict is what to do with one response.
type verdict int

const (
	send verdict = iota
	drop
	slip
)

// limiter is the per-prefix token buckets. The zero rate disables it.
type limiter struct {
	rate float64
	slip int
	// maxPrefixes bounds the table: past it, buckets idle long enough to
	// be full again are swept.
	maxPrefixes int

	mu      sync.Mutex
	buckets map[[16]byte]*bucket
}

type bucket struct {
	tokens  float64
	last    time.Time
	dropped int
}

func newLimiter(rate, slip int) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: float64(rate), slip: slip, maxPrefixes: 1 << 16, buckets: map[[16]byte]*bucket{}}
}

// prefix is ip's /24 (IPv4) or /56 (IPv6), as a map key.
func prefix(ip net.IP) [16]byte {
	var k [16]byte
	if v4 := ip.To4(); v4 != nil {
		k[10], k[11] = 0xff, 0xff
		copy(k[12:], v4[:3])
		return k
	}
	copy(k[:7], ip.To16())
	return k
}

// check spends a token of ip's prefix at now.
func (l *limiter) check(ip net.IP, now time.Time) verdict {
	k := prefix(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.maxPrefixes {
			l.sweep(now)
		}
		b = &bucket{tokens: l.rate, last: now}
		l.buckets[k] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(l.rate, b.tokens+el*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return send
	}
	b.dropped++
	if l.slip > 0 && b.dropped%l.slip == 0 {
		return slip
	}
	return drop
}

// sweep forgets the buckets that have refilled completely.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.rate {
			delete(l.buckets, k)
		}
	}
}
