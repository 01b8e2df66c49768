package apps

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	launches prometheus.Counter
	declined prometheus.Counter
	updates  *prometheus.CounterVec
	requests *prometheus.CounterVec
	unused   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		launches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "launches_total", Help: "Tasks launched by the apps framework."}),
		declined: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "offers_declined_total", Help: "Offers declined for want of demand or fit."}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "status_updates_total",
			Help: "Task status updates received, by state."}, []string{"state"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "api_requests_total",
			Help: "Marathon API requests by method and status code."}, []string{"method", "code"}),
		unused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "offers_unused_total",
			Help: "Offers an app waiting for instances could not use, by reason (UnfulfilledConstraint, InsufficientCpus, ...)."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.launches, m.declined, m.updates, m.requests, m.unused)
	}
	return m
}
