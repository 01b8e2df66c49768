package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/keelhq/keel/snapshot"
)

// Config configures the proxy.
type Config struct {
	// HTTPAddr is the virtual-host listener ("" = none).
	HTTPAddr string
	// ServiceBind is the default IP of service port listeners.
	ServiceBind string
	// Group is the marathon-lb group served (default "external", "*" all).
	Group string
	// HealthyOnly routes only to healthy tasks when they have health checks.
	HealthyOnly bool
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Timeouts of the data path.
const (
	connectTimeout  = 5 * time.Second
	responseTimeout = 60 * time.Second
	drainTimeout    = 5 * time.Second
	clientIdle      = 30 * time.Second
)

// Proxy is a running proxy.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	table   atomic.Pointer[Table]
	errs    atomic.Pointer[[]LabelError]

	mu        sync.Mutex // guards clients, listeners, closed; never taken by requests
	clients   map[string]*backendClient
	listeners map[string]*tcpListener
	closed    bool
	conns     sync.WaitGroup // accept loops and TCP connections
	httpPort  string

	activeMu sync.Mutex
	active   map[net.Conn]struct{}
}

// backendClient is a keep-alive pool to one backend, shared by every
// table that routes to it.
type backendClient struct {
	hc       *fasthttp.HostClient
	inflight atomic.Int64
}

// New returns a proxy with an empty table.
func New(cfg Config) (*Proxy, error) {
	if cfg.Group == "" {
		cfg.Group = "external"
	}
	if cfg.ServiceBind == "" {
		cfg.ServiceBind = "0.0.0.0"
	}
	if net.ParseIP(cfg.ServiceBind) == nil {
		return nil, fmt.Errorf("proxy: config: ServiceBind %q is not an IP", cfg.ServiceBind)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{cfg: cfg, log: log.With("component", "proxy"), metrics: newMetrics(cfg.Registerer),
		clients: map[string]*backendClient{}, listeners: map[string]*tcpListener{}, active: map[net.Conn]struct{}{}}
	empty, _ := BuildTable(snapshot.Empty(), p.tableOptions())
	p.table.Store(empty)
	p.errs.Store(&[]LabelError{})
	if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
		p.httpPort = port
	}
	return p, nil
}

func (p *Proxy) tableOptions() TableOptions {
	return TableOptions{Group: p.cfg.Group, HealthyOnly: p.cfg.HealthyOnly, ServiceBind: p.cfg.ServiceBind}
}

// Update builds the table of snap, swaps it in and reconciles listeners.
func (p *Proxy) Update(snap *snapshot.Snapshot) {
	if snap == nil {
		return
	}
	t, errs := BuildTable(snap, p.tableOptions())
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	// Attach pooled clients before publishing; drop pools nobody uses.
	used := map[string]bool{}
	for _, r := range t.routes {
		for i := range r.Backends {
			b := &r.Backends[i]
			c := p.clients[b.Addr]
			if c == nil {
				c = newBackendClient(b.Addr)
				p.clients[b.Addr] = c
			}
			b.client = c
			used[b.Addr] = true
		}
	}
	for addr, c := range p.clients {
		if !used[addr] {
			delete(p.clients, addr)
			c.hc.CloseIdleConnections()
		}
	}
	if errs == nil {
		errs = []LabelError{}
	}
	p.table.Store(t)
	p.errs.Store(&errs)
	if len(errs) > 0 {
		for _, e := range errs {
			p.log.Warn("ignoring invalid label", "app", e.App, "label", e.Label, "value", e.Value, "reason", e.Reason)
		}
	}
	p.metrics.labelErrors.Set(float64(len(errs)))
	p.metrics.generation.Set(float64(t.Generation))
	p.reconcileListeners(t)
}

func newBackendClient(addr string) *backendClient {
	return &backendClient{hc: &fasthttp.HostClient{
		Addr:                          addr,
		Dial:                          (&fasthttp.TCPDialer{Concurrency: 0}).Dial,
		MaxConns:                      1024,
		MaxIdleConnDuration:           clientIdle,
		ReadTimeout:                   responseTimeout,
		WriteTimeout:                  responseTimeout,
		MaxIdemponentCallAttempts:     1,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
	}}
}

// Run serves until ctx is done.
func (p *Proxy) Run(ctx context.Context) error {
	var srv *fasthttp.Server
	var ln net.Listener
	errc := make(chan error, 1)
	if p.cfg.HTTPAddr != "" {
		var err error
		ln, err = net.Listen("tcp", p.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("proxy: listen %s: %w", p.cfg.HTTPAddr, err)
		}
		srv = &fasthttp.Server{
			Handler:                       p.serveHTTP,
			Name:                          "keel",
			ReadTimeout:                   responseTimeout,
			WriteTimeout:                  responseTimeout,
			IdleTimeout:                   2 * time.Minute,
			MaxRequestBodySize:            64 << 20,
			DisableHeaderNamesNormalizing: true,
			NoDefaultDate:                 true,
			NoDefaultContentType:          true,
			CloseOnShutdown:               true,
			Logger:                        fasthttpLogger{p.log},
		}
		p.log.Info("HTTP proxy listening", "addr", ln.Addr().String(), "group", p.cfg.Group)
		go func() { errc <- srv.Serve(ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("proxy: serve: %w", err)
	}
	p.mu.Lock()
	p.closed = true
	for key, l := range p.listeners {
		l.close()
		delete(p.listeners, key)
	}
	p.mu.Unlock()
	if srv != nil && err == nil {
		sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		_ = srv.ShutdownWithContext(sctx)
		cancel()
		// Serve may not have registered the listener before the shutdown:
		// closing it ourselves makes sure Serve returns.
		ln.Close()
		<-errc
	}
	p.waitConns()
	return err
}

type fasthttpLogger struct{ log *slog.Logger }

// Printf logs fasthttp's messages at debug level.
func (l fasthttpLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

// hopHeaders are removed in both directions (RFC 9110 7.6.1).
var hopHeaders = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Upgrade"}

// serveHTTP proxies one request by its Host header.
func (p *Proxy) serveHTTP(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	t := p.table.Load()
	host := strings.ToLower(hostOnly(string(ctx.Host())))
	vh := t.lookup(host)
	var r *Route
	if vh != nil {
		r = vh.match(ctx.Path())
	}
	if r == nil {
		p.metrics.noRoute.Inc()
		ctx.Error("no route for host\n", fasthttp.StatusNotFound)
		return
	}
	if len(r.Backends) == 0 {
		p.observe(r, fasthttp.StatusServiceUnavailable, start)
		ctx.Error("no healthy backend\n", fasthttp.StatusServiceUnavailable)
		return
	}
	req := &ctx.Request
	stripHop(&req.Header)
	xff := ctx.RemoteIP().String()
	if prior := req.Header.Peek("X-Forwarded-For"); len(prior) > 0 {
		xff = string(prior) + ", " + xff
	}
	req.Header.Set("X-Forwarded-For", xff)
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("X-Forwarded-Host", string(ctx.Host()))
	if p.httpPort != "" {
		req.Header.Set("X-Forwarded-Port", p.httpPort)
	}
	first := pick(r, ctx.RemoteIP())
	resp := &ctx.Response
	var err error
	for attempt := 0; attempt < 2 && attempt < len(r.Backends); attempt++ {
		b := &r.Backends[(first+attempt)%len(r.Backends)]
		b.client.inflight.Add(1)
		err = b.client.hc.DoTimeout(req, resp, responseTimeout)
		b.client.inflight.Add(-1)
		if err == nil || !(retriable(err) || (idempotent(req.Header.Method()) && !errors.Is(err, fasthttp.ErrTimeout))) {
			break
		}
		p.metrics.backendErrors.WithLabelValues(r.App).Inc()
	}
	if err != nil {
		p.metrics.backendErrors.WithLabelValues(r.App).Inc()
		p.log.Debug("backend error", "app", r.App, "err", err)
		resp.Reset()
		code := fasthttp.StatusBadGateway
		if errors.Is(err, fasthttp.ErrTimeout) {
			code = fasthttp.StatusGatewayTimeout
		}
		ctx.Error(fasthttp.StatusMessage(code)+"\n", code)
		p.observe(r, code, start)
		return
	}
	resp.Header.Del("Connection")
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	p.observe(r, resp.StatusCode(), start)
}

// stripHop removes hop-by-hop request headers, including those named by
// Connection, and keeps the backend connection reusable.
func stripHop(h *fasthttp.RequestHeader) {
	if c := h.Peek("Connection"); len(c) > 0 {
		for _, name := range strings.Split(string(c), ",") {
			if name = strings.TrimSpace(name); name != "" && !strings.EqualFold(name, "close") && !strings.EqualFold(name, "keep-alive") {
				h.Del(name)
			}
		}
	}
	h.Del("Connection")
	h.ResetConnectionClose()
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// retriable reports whether the request never reached the backend, so
// another one may take it.
func retriable(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns)
}

// idempotent reports whether a request of this method may be sent again
// after a connection failure (RFC 9110 9.2.2).
func idempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// pick chooses the first backend to try.
func pick(r *Route, client net.IP) int {
	n := len(r.Backends)
	switch r.Balance {
	case "random":
		return rand.IntN(n)
	case "source":
		h := fnv.New32a()
		h.Write(client)
		return int(h.Sum32() % uint32(n))
	case "leastconn":
		best, bestN := 0, int64(-1)
		start := int(r.next.Add(1))
		for i := 0; i < n; i++ {
			j := (start + i) % n
			if c := r.Backends[j].client.inflight.Load(); bestN < 0 || c < bestN {
				best, bestN = j, c
			}
		}
		return best
	}
	return int((r.next.Add(1) - 1) % uint64(n))
}

func (p *Proxy) observe(r *Route, code int, start time.Time) {
	p.metrics.requests.WithLabelValues(r.App, strconv.Itoa(code/100)+"xx").Inc()
	p.metrics.duration.WithLabelValues(r.App).Observe(time.Since(start).Seconds())
}

// hostOnly strips a port from a Host header value.
func hostOnly(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[:i], ":") {
		return h[:i]
	}
	return h
}
