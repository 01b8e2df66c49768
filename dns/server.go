package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/snapshot"
)

// Config configures the DNS server.
type Config struct {
	// Addr is the UDP and TCP listen address, e.g. "127.0.0.1:8053".
	Addr string
	// Domain is the cluster domain (default "mesos").
	Domain string
	// TTL of every record (default 60, as Mesos-DNS).
	TTL uint32
	// HealthyOnly leaves out tasks whose health check has not passed.
	HealthyOnly bool
	// IPSources order where task IPs come from (default netinfo, mesos, host).
	IPSources []string
	// EnforceRFC952 names tasks and frameworks by RFC 952 instead of RFC
	// 1123 (Mesos-DNS's EnforceRFC952).
	EnforceRFC952 bool
	// Resolvers ("ip:port") answer names outside Domain; none: REFUSED.
	Resolvers []string
	// ZoneResolvers send the names under a zone to that zone's servers
	// ("ip" or "ip:port") instead of Resolvers, e.g. "consul" to
	// 127.0.0.1:8600 (Mesos-DNS's zoneResolvers; flag --zone_resolvers
	// consul=127.0.0.1:8600, see ParseZoneResolvers). The most specific
	// zone wins; a zone may not overlap Domain. The same RecursionAllowed
	// rule applies.
	ZoneResolvers map[string][]string
	// RecursionAllowed are the clients whose queries outside Domain are
	// forwarded; others get REFUSED, so the server is no open resolver.
	// Nil means loopback, private and link-local ranges.
	RecursionAllowed []*net.IPNet
	// RateLimit is the UDP responses per second each client prefix (IPv4
	// /24, IPv6 /56) may receive, with a burst of as many; 0 turns
	// response-rate limiting off (flag --dns_rate_limit).
	RateLimit int
	// RateLimitSlip sends every RateLimitSlip-th response that the limit
	// drops truncated (TC) instead, so real clients retry over TCP; 0
	// drops them all (flag --dns_rate_limit_slip, 2 is BIND's default).
	RateLimitSlip int
	// Registerer receives the keel_dns_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default.
	Logger *slog.Logger
	// Version is reported by /v1/version.
	Version string
}

// Server answers DNS queries from the latest zone.
type Server struct {
	cfg           Config
	log           *slog.Logger
	zone          atomic.Pointer[Records]
	fwd           *mdns.Client
	zoneResolvers []zoneResolver
	rrl           *limiter
	watch         *watchHub
	metrics       *metrics
	nxCounters    [256]atomic.Pointer[counterBox]
	ready         chan struct{}
	addr          atomic.Pointer[string]
}

// New returns a server with an empty zone.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("dns: config: Addr is required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "mesos"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 60
	}
	for _, r := range cfg.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, fmt.Errorf("dns: config: resolver %q: want ip:port", r)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.RecursionAllowed == nil {
		cfg.RecursionAllowed = DefaultRecursionAllowed()
	}
	zr, err := parseZoneResolvers(cfg.ZoneResolvers, cfg.Domain)
	if err != nil {
		return nil, err
	}
	if cfg.RateLimit < 0 || cfg.RateLimitSlip < 0 {
		return nil, errors.New("dns: config: RateLimit and RateLimitSlip must not be negative")
	}
	s := &Server{cfg: cfg, log: log.With("component", "dns"), fwd: &mdns.Client{Timeout: 2 * time.Second},
		zoneResolvers: zr, rrl: newLimiter(cfg.RateLimit, cfg.RateLimitSlip), watch: newWatchHub(),
		metrics: newMetrics(cfg.Registerer), ready: make(chan struct{})}
	s.zone.Store(Build(snapshot.Empty(), s.buildOptions()))
	return s, nil
}

func (s *Server) buildOptions() BuildOptions {
	return BuildOptions{Domain: s.cfg.Domain, TTL: s.cfg.TTL, HealthyOnly: s.cfg.HealthyOnly, IPSources: s.cfg.IPSources,
		EnforceRFC952: s.cfg.EnforceRFC952}
}

// Update builds the zone of snap and swaps it in.
func (s *Server) Update(snap *snapshot.Snapshot) {
	if snap == nil {
		return
	}
	z := Build(snap, s.buildOptions())
	s.zone.Store(z)
	s.watch.publish(z)
	s.metrics.records.Set(float64(z.Len()))
	s.metrics.generation.Set(float64(z.Generation))
}

// Zone returns the zone being served.
func (s *Server) Zone() *Records { return s.zone.Load() }

// Ready is closed once both listeners are bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address (after Ready).
func (s *Server) Addr() string {
	if p := s.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// Run serves UDP and TCP until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	pc, ln, err := listenBoth(s.cfg.Addr)
	if err != nil {
		return err
	}
	addr := pc.LocalAddr().String()
	s.addr.Store(&addr)
	// Shutdown of a miekg server that has not started yet fails and leaves
	// it running once it starts, so it must report started first.
	started := make(chan struct{})
	tcp := &mdns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		NotifyStartedFunc: func() { close(started) }}
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := tcp.ActivateAndServe(); err != nil {
			errc <- err
		}
	}()
	go func() {
		defer wg.Done()
		s.serveUDP(ctx, pc)
	}()
	select {
	case <-started:
	case err := <-errc:
		pc.Close()
		ln.Close()
		wg.Wait()
		return fmt.Errorf("dns: serve: %w", err)
	}
	close(s.ready)
	s.log.Info("DNS listening", "addr", addr, "domain", s.cfg.Domain)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("dns: serve: %w", runErr)
	}
	pc.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = tcp.ShutdownContext(sctx)
	wg.Wait()
	return runErr
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	start := time.Now()
	udp := true
	var client net.IP
	switch a := w.RemoteAddr().(type) {
	case *net.TCPAddr:
		udp, client = false, a.IP
	case *net.UDPAddr:
		client = a.IP
	}
	resp := s.answer(req, udp, client)
	if resp == nil {
		return
	}
	_ = w.WriteMsg(resp)
	s.countGeneral(req, resp)
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

// SystemResolvers returns the nameservers of a resolv.conf file as
// "ip:port", or nil when it cannot be read. Loopback resolvers are kept:
// the caller must not pass the server's own address back to it.
func SystemResolvers(path string) []string {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out
}

// DefaultRecursionAllowed is loopback, RFC 1918 and 6598, link-local and
// IPv6 unique-local: the clients a cluster's own resolver serves.
func DefaultRecursionAllowed() []*net.IPNet {
	var out []*net.IPNet
	for _, c := range []string{"127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
		"169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"} {
		_, n, _ := net.ParseCIDR(c)
		out = append(out, n)
	}
	return out
}

// ParseNets parses a comma-separated list of CIDRs.
func ParseNets(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, c := range list {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("dns: %q: want a CIDR like 10.0.0.0/8", c)
		}
		out = append(out, n)
	}
	return out, nil
}

func (s *Server) recursionAllowed(ip net.IP) bool {
	if ip == nil {
		return false
	}
	for _, n := range s.cfg.RecursionAllowed {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// listenBoth binds UDP and TCP on the same port. With port 0 the port UDP
// gets may be taken for TCP, so it tries a few ports.
func listenBoth(addr string) (*net.UDPConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: listen udp: %w", err)
	}
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || attempt == 20 {
			return nil, nil, fmt.Errorf("dns: listen tcp: %w", err)
		}
	}
}
