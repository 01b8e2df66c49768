package proxy

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	backendErrors *prometheus.CounterVec
	noRoute       prometheus.Counter
	tcpConns      *prometheus.CounterVec
	tcpActive     *prometheus.GaugeVec
	tcpBytes      *prometheus.CounterVec
	udpSessions   *prometheus.CounterVec
	udpActive     *prometheus.GaugeVec
	udpDatagrams  *prometheus.CounterVec
	udpBytes      *prometheus.CounterVec
	listeners     prometheus.Gauge
	listenErrors  prometheus.Counter
	acceptErrors  prometheus.Counter
	labelErrors   prometheus.Gauge
	generation    prometheus.Gauge
	ejections     prometheus.Counter
	rejected      *prometheus.CounterVec
	certErrors    prometheus.Counter
	certificates  prometheus.Gauge
	upgrades      prometheus.Counter

	l4 *l4Series
}

func newMetrics(reg prometheus.Registerer) *metrics {
	l4 := []string{"app", "listen"}
	l4dir := []string{"app", "listen", "direction"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "requests_total",
			Help: "Proxied HTTP requests by app and status class."}, []string{"app", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "keel", Subsystem: "proxy", Name: "request_duration_seconds",
			Help: "Time from request to response, by app.", Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10)}, []string{"app"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "backend_errors_total",
			Help: "Failed attempts to reach a backend, by app."}, []string{"app"}),
		noRoute: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "no_route_total", Help: "HTTP requests for a host (or path) with no route."}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "tcp_connections_total",
			Help: "TCP connections accepted on service ports, by app and listener."}, l4),
		tcpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "tcp_active_connections",
			Help: "Open TCP connections on service ports, by app and listener."}, l4),
		tcpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "tcp_bytes_total",
			Help: "Bytes moved through service port TCP connections, counted when each connection ends: in from clients, out to them."}, l4dir),
		udpSessions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "udp_sessions_total",
			Help: "UDP client sessions started on service ports, by app and listener."}, l4),
		udpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "udp_active_sessions",
			Help: "Open UDP client sessions on service ports, by app and listener."}, l4),
		udpDatagrams: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "udp_datagrams_total",
			Help: "Datagrams forwarded on UDP service ports: in from clients, out to them."}, l4dir),
		udpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "udp_bytes_total",
			Help: "Payload bytes forwarded on UDP service ports: in from clients, out to them."}, l4dir),
		listeners:    prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "listeners", Help: "Open service port listeners."}),
		listenErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "listen_errors_total", Help: "Service ports that could not be opened."}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "proxy", Name: "accept_errors_total",
			Help: "Connections a listener failed to accept, for a reason other than the client giving up first (such as running out of file descriptors)."}),
		labelErrors: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "label_errors",
			Help: "Labels ignored as invalid in the current table, with static routes left out or a routes file refused."}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "proxy", Name: "table_generation", Help: "Snapshot generation of the routing table."}),
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
	m.l4 = &l4Series{m: m, refs: map[l4Key]*l4Ref{}}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.backendErrors, m.noRoute, m.tcpConns, m.tcpActive, m.tcpBytes,
			m.udpSessions, m.udpActive, m.udpDatagrams, m.udpBytes, m.listeners, m.listenErrors, m.acceptErrors, m.labelErrors, m.generation,
			m.ejections, m.rejected, m.certErrors, m.certificates, m.upgrades)
	}
	return m
}

// Protocols of service port series.
const (
	protoTCP = "tcp"
	protoUDP = "udp"
)

// l4Key names the series of one app on one service port listener.
type l4Key struct {
	proto  string // protoTCP or protoUDP
	app    string
	listen string // "ip:port"
}

// l4Counters are the series of one l4Key. They never change once made, so
// a connection (or session) keeps them and counts without a lookup.
// datagramsIn and datagramsOut are nil for TCP.
type l4Counters struct {
	opened                    prometheus.Counter // connections or sessions
	active                    prometheus.Gauge
	bytesIn, bytesOut         prometheus.Counter
	datagramsIn, datagramsOut prometheus.Counter
}

type l4Ref struct {
	holders int
	c       l4Counters
}

// l4Series keeps the service port series of an app on a listener while
// anything can still count on them: the open listener while the table
// gives its port to that app, and each connection or session started for
// it. When the last holder lets go the series are deleted, so an app that
// left stops being exported instead of lingering at its last values.
// Connections still open when their listener closes keep their app's
// series until they end.
type l4Series struct {
	m    *metrics
	mu   sync.Mutex
	refs map[l4Key]*l4Ref
}

// acquire holds k's series, making them (at zero) if they do not exist.
func (s *l4Series) acquire(k l4Key) *l4Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refs[k]
	if r == nil {
		r = &l4Ref{}
		if k.proto == protoUDP {
			r.c = l4Counters{
				opened:       s.m.udpSessions.WithLabelValues(k.app, k.listen),
				active:       s.m.udpActive.WithLabelValues(k.app, k.listen),
				bytesIn:      s.m.udpBytes.WithLabelValues(k.app, k.listen, "in"),
				bytesOut:     s.m.udpBytes.WithLabelValues(k.app, k.listen, "out"),
				datagramsIn:  s.m.udpDatagrams.WithLabelValues(k.app, k.listen, "in"),
				datagramsOut: s.m.udpDatagrams.WithLabelValues(k.app, k.listen, "out"),
			}
		} else {
			r.c = l4Counters{
				opened:   s.m.tcpConns.WithLabelValues(k.app, k.listen),
				active:   s.m.tcpActive.WithLabelValues(k.app, k.listen),
				bytesIn:  s.m.tcpBytes.WithLabelValues(k.app, k.listen, "in"),
				bytesOut: s.m.tcpBytes.WithLabelValues(k.app, k.listen, "out"),
			}
		}
		s.refs[k] = r
	}
	r.holders++
	return &r.c
}

// release lets go of k's series, deleting them when nothing holds them.
func (s *l4Series) release(k l4Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refs[k]
	if r == nil {
		return
	}
	if r.holders--; r.holders > 0 {
		return
	}
	delete(s.refs, k)
	for _, dir := range []string{"in", "out"} {
		if k.proto == protoUDP {
			s.m.udpBytes.DeleteLabelValues(k.app, k.listen, dir)
			s.m.udpDatagrams.DeleteLabelValues(k.app, k.listen, dir)
		} else {
			s.m.tcpBytes.DeleteLabelValues(k.app, k.listen, dir)
		}
	}
	if k.proto == protoUDP {
		s.m.udpSessions.DeleteLabelValues(k.app, k.listen)
		s.m.udpActive.DeleteLabelValues(k.app, k.listen)
	} else {
		s.m.tcpConns.DeleteLabelValues(k.app, k.listen)
		s.m.tcpActive.DeleteLabelValues(k.app, k.listen)
	}
}

// listen moves a listener's hold from the app it served (old, "" for a
// new listener) to the app the table now gives its port (app, "" for a
// closing listener). Nothing changes when they are the same.
func (s *l4Series) listen(proto, listen, old, app string) {
	if old == app {
		return
	}
	if app != "" {
		s.acquire(l4Key{proto, app, listen})
	}
	if old != "" {
		s.release(l4Key{proto, old, listen})
	}
}
