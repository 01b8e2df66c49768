package proxy

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	backendErrors *prometheus.CounterVec
	noRoute       prometheus.Counter
	tcpConns      *prometheus.CounterVec
	tcpActive     *prometheus.GaugeVec
	listeners     prometheus.Gauge
	listenErrors  prometheus.Counter
	labelErrors   prometheus.Gauge
	generation    prometheus.Gauge
	ejections     prometheus.Counter
	rejected      *prometheus.CounterVec
	certErrors    prometheus.Counter
	certificates  prometheus.Gauge
	upgrades      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "requests_total",
			Help: "Proxied HTTP requests by app and status class."}, []string{"app", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "keel", Subsystem: "proxy", Name: "request_duration_seconds",
			Help: "Time from request to response, by app.", Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)}, []string{"app"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "backend_errors_total",
			Help: "Failed attempts to reach a backend, by app."}, []string{"app"}),
		noRoute: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "no_route_total", Help: "HTTP requests for a host (or path) with no route."}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "tcp_connections_total",
			Help: "TCP connections accepted on service ports."}, []string{"listen"}),
		tcpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "tcp_active_connections",
			Help: "Open TCP connections on service ports."}, []string{"listen"}),
		listeners:    prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "listeners", Help: "Open service port listeners."}),
		listenErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "listen_errors_total", Help: "Service ports that could not be opened."}),
		labelErrors:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "label_errors", Help: "Labels ignored as invalid in the current table."}),
		generation:   prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "table_generation", Help: "Snapshot generation of the routing table."}),
		ejections: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "ejections_total",
			Help: "Backends ejected by passive outlier detection (consecutive connect errors or 5xx)."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "rejected_requests_total",
			Help: "HTTP requests refused before routing as malformed or ambiguous, by reason."}, []string{"reason"}),
		certErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "certificate_errors_total",
			Help: "Certificate files that could not be loaded."}),
		certificates: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "certificates", Help: "Certificates the HTTPS listener serves."}),
		upgrades: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "upgrades_total",
			Help: "Connections upgraded (WebSocket) and tunnelled to a backend."}),
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.backendErrors, m.noRoute, m.tcpConns, m.tcpActive, m.listeners, m.listenErrors, m.labelErrors, m.generation,
			m.ejections, m.rejected, m.certErrors, m.certificates, m.upgrades)
	}
	return m
}
