package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
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
	// Resolvers ("ip:port") answer names outside Domain; none: REFUSED.
	Resolvers []string
	// RecursionAllowed are the clients whose queries outside Domain are
	// forwarded; others get REFUSED, so the server is no open resolver.
	// Nil means loopback, private and link-local ranges.
	RecursionAllowed []*net.IPNet
	Registerer       prometheus.Registerer
	Logger           *slog.Logger
	// Version is reported by /v1/version.
	Version string
}

// Server answers DNS queries from the latest zone.
type Server struct {
	cfg     Config
	log     *slog.Logger
	zone    atomic.Pointer[Records]
	fwd     *mdns.Client
	metrics *metrics
	ready   chan struct{}
	addr    atomic.Pointer[string]
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
	s := &Server{cfg: cfg, log: log.With("component", "dns"), fwd: &mdns.Client{Timeout: 2 * time.Second},
		metrics: newMetrics(cfg.Registerer), ready: make(chan struct{})}
	s.zone.Store(Build(snapshot.Empty(), s.buildOptions()))
	return s, nil
}

func (s *Server) buildOptions() BuildOptions {
	return BuildOptions{Domain: s.cfg.Domain, TTL: s.cfg.TTL, HealthyOnly: s.cfg.HealthyOnly, IPSources: s.cfg.IPSources}
}

// Update builds the zone of snap and swaps it in.
func (s *Server) Update(snap *snapshot.Snapshot) {
	if snap == nil {
		return
	}
	z := Build(snap, s.buildOptions())
	s.zone.Store(z)
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
	// it running once it starts, so both must report started first.
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	udp := &mdns.Server{PacketConn: pc, Handler: s, UDPSize: 65535, NotifyStartedFunc: notify}
	tcp := &mdns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, NotifyStartedFunc: notify}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for _, srv := range []*mdns.Server{udp, tcp} {
		wg.Add(1)
		go func(srv *mdns.Server) {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		}(srv)
	}
	for i := 0; i < 2; i++ {
		select {
		case <-started:
		case err := <-errc:
			pc.Close()
			ln.Close()
			wg.Wait()
			return fmt.Errorf("dns: serve: %w", err)
		}
	}
	close(s.ready)
	s.log.Info("DNS listening", "addr", addr, "domain", s.cfg.Domain)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("dns: serve: %w", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = udp.ShutdownContext(sctx)
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
	qtype := "none"
	if len(req.Question) > 0 {
		qtype = mdns.TypeToString[req.Question[0].Qtype]
	}
	s.metrics.queries.WithLabelValues(qtype, mdns.RcodeToString[resp.Rcode]).Inc()
	s.metrics.duration.Observe(time.Since(start).Seconds())
}

// answer builds the reply to req from client; nil means drop.
func (s *Server) answer(req *mdns.Msg, udp bool, client net.IP) *mdns.Msg {
	resp := new(mdns.Msg)
	if req.Response || req.Opcode != mdns.OpcodeQuery {
		resp.SetRcode(req, mdns.RcodeNotImplemented)
		return resp
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, mdns.RcodeFormatError)
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	z := s.zone.Load()
	if !mdns.IsSubDomain(z.Domain, name) {
		if !s.recursionAllowed(client) {
			resp.SetRcode(req, mdns.RcodeRefused)
			return resp
		}
		return s.forward(req, udp)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = len(s.cfg.Resolvers) > 0
	rrs, exists := z.Lookup(name)
	if !exists {
		resp.Rcode = mdns.RcodeNameError
		resp.Ns = []mdns.RR{z.SOA}
		return s.finish(req, resp, udp)
	}
	for _, rr := range rrs {
		if q.Qtype == mdns.TypeANY || rr.Header().Rrtype == q.Qtype {
			resp.Answer = append(resp.Answer, rr)
		}
	}
	if len(resp.Answer) == 0 {
		resp.Ns = []mdns.RR{z.SOA}
		return s.finish(req, resp, udp)
	}
	// Spread clients over the tasks: a new order every query.
	if len(resp.Answer) > 1 {
		ans := append([]mdns.RR(nil), resp.Answer...)
		rand.Shuffle(len(ans), func(i, j int) { ans[i], ans[j] = ans[j], ans[i] })
		resp.Answer = ans
	}
	// SRV targets resolve in the same answer.
	if q.Qtype == mdns.TypeSRV {
		seen := map[string]bool{}
		for _, rr := range resp.Answer {
			if srv, ok := rr.(*mdns.SRV); ok && !seen[srv.Target] {
				seen[srv.Target] = true
				if extra, ok := z.Lookup(srv.Target); ok {
					for _, e := range extra {
						if e.Header().Rrtype == mdns.TypeA || e.Header().Rrtype == mdns.TypeAAAA {
							resp.Extra = append(resp.Extra, e)
						}
					}
				}
			}
		}
	}
	return s.finish(req, resp, udp)
}

// finish applies EDNS0 and truncation.
func (s *Server) finish(req, resp *mdns.Msg, udp bool) *mdns.Msg {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(min(max(opt.UDPSize(), mdns.MinMsgSize), 1232))
		resp.SetEdns0(1232, false)
	}
	if udp {
		resp.Truncate(size)
	}
	return resp
}

// forward relays a query outside the domain to the resolvers in order.
func (s *Server) forward(req *mdns.Msg, udp bool) *mdns.Msg {
	if len(s.cfg.Resolvers) == 0 || !req.RecursionDesired {
		resp := new(mdns.Msg)
		resp.SetRcode(req, mdns.RcodeRefused)
		return resp
	}
	s.metrics.forwarded.Inc()
	c := s.fwd
	if !udp {
		c = &mdns.Client{Net: "tcp", Timeout: s.fwd.Timeout}
	}
	for _, r := range s.cfg.Resolvers {
		resp, _, err := c.Exchange(req, r)
		if err == nil && resp != nil {
			resp.Id = req.Id
			return resp
		}
		s.metrics.forwardErrors.Inc()
	}
	resp := new(mdns.Msg)
	resp.SetRcode(req, mdns.RcodeServerFailure)
	return resp
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
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
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
