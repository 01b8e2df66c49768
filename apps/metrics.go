package apps

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	launches prometheus.Counter
	declined prometheus.Counter
	updates  *prometheus.CounterVec
	requests *prometheus.CounterVec
	unused   *prometheus.CounterVec
	// readiness counts readiness checks run, by result (ready, not_ready, error).
	readiness *prometheus.CounterVec
	// unreachable counts unreachable instances moved on by their
	// unreachableStrategy, by what happened (inactive, expunged, back).
	unreachable *prometheus.CounterVec
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
		readiness: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "readiness_checks_total",
			Help: "Readiness checks run by the framework, by result (ready, not_ready, error)."}, []string{"result"}),
		unreachable: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "apps", Name: "unreachable_instances_total",
			Help: "Unreachable instances by what their unreachableStrategy made of them (inactive: replaced, expunged: forgotten, back: reachable again)."}, []string{"event"}),
	}
	if reg != nil {
		reg.MustRegister(m.launches, m.declined, m.updates, m.requests, m.unused, m.readiness, m.unreachable)
	}
	return m
}
