package dns

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	queries       *prometheus.CounterVec
	duration      prometheus.Histogram
	forwarded     prometheus.Counter
	forwardErrors prometheus.Counter
	records       prometheus.Gauge
	generation    prometheus.Gauge
	rateLimited   *prometheus.CounterVec
	watchers      prometheus.Gauge
	watchDropped  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "dns", Name: "queries_total",
			Help: "DNS queries answered, by query type and response code."}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "keel", Subsystem: "dns", Name: "request_duration_seconds",
			Help: "Time to answer a query.", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)}),
		forwarded:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "dns", Name: "forwarded_total", Help: "Queries forwarded to upstream resolvers."}),
		forwardErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "dns", Name: "forward_errors_total", Help: "Failed exchanges with upstream resolvers."}),
		records:       prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "dns", Name: "records", Help: "Records in the served zone."}),
		generation:    prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "dns", Name: "zone_generation", Help: "Snapshot generation of the served zone."}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "dns", Name: "rate_limited_total",
			Help: "UDP responses withheld by response-rate limiting, by action (drop, or slip: sent truncated)."}, []string{"action"}),
		watchers:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "dns", Name: "watchers", Help: "Clients of /v1/watch."}),
		watchDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "dns", Name: "watch_dropped_total", Help: "Clients of /v1/watch dropped for falling behind."}),
	}
	if reg != nil {
		reg.MustRegister(m.queries, m.duration, m.forwarded, m.forwardErrors, m.records, m.generation, m.rateLimited, m.watchers, m.watchDropped)
	}
	return m
}
