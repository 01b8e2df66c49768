package proxy

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// appMetrics are one app's request series, resolved once instead of by a
// label lookup (hashing and a locked map) on every request. A code class's
// counter is resolved the first time it is needed, so that an app shows
// only the classes it answered, as before.
type appMetrics struct {
	app      string
	vec      *prometheus.CounterVec
	classes  [len(codeClasses) + 1]atomic.Pointer[prometheus.Counter] // codeClasses, then "other"
	duration prometheus.Observer
}

func newAppMetrics(m *metrics, app string) *appMetrics {
	return &appMetrics{app: app, vec: m.requests, duration: m.duration.WithLabelValues(app)}
}

// request counts one answer of code and its duration in seconds.
func (a *appMetrics) request(code int, seconds float64) {
	i := len(codeClasses) // "other"
	if c := code / 100; c >= 0 && c < len(codeClasses) {
		i = c
	}
	c := a.classes[i].Load()
	if c == nil {
		class := "other"
		if i < len(codeClasses) {
			class = codeClasses[i]
		}
		counter := a.vec.WithLabelValues(a.app, class)
		c = &counter
		a.classes[i].Store(c) // racing stores hold the same series
	}
	(*c).Inc()
	a.duration.Observe(seconds)
}
