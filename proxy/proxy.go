package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
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
	// HTTPEngine serves HTTPAddr: "loop", an epoll loop for the common
	// request that hands every other one, and the rest of its connection,
	// to the fasthttp path (Linux only), or "fasthttp" for every request.
	// "" is DefaultHTTPEngine.
	HTTPEngine string
	// HTTPSAddr is the TLS virtual-host listener ("" = none). It routes by
	// the same table as HTTPAddr and picks its certificate by SNI.
	HTTPSAddr string
	// HTTPSOptional makes a failure to listen on HTTPSAddr a logged
	// warning instead of an error: for a default address nobody asked for.
	HTTPSOptional bool
	// SSLCertsDir holds the HTTPS certificates: every *.pem in it is a
	// bundle of certificate chain and private key; default.pem (else the
	// first by name) is served to clients whose SNI matches nothing.
	SSLCertsDir string
	// TCPEngine serves the TCP service ports: "loop", one epoll loop for
	// all of them (Linux only), or "go", a goroutine per connection with
	// io.Copy. "" is DefaultTCPEngine.
	TCPEngine string
	// ServiceBind is the default IP of service port listeners.
	ServiceBind string
	// Group is the marathon-lb group served (default "external", "*" all).
	Group string
	// HealthyOnly routes only to healthy tasks when they have health checks.
	HealthyOnly bool
	// TCPIdleTimeout closes a service port TCP connection that moved no
	// byte either way for this long (0 = 1h, negative = never).
	TCPIdleTimeout time.Duration
	// UDPIdleTimeout ends a UDP service port client's session (its
	// upstream socket) after this long without a datagram (0 = 1m).
	UDPIdleTimeout time.Duration
	// Registerer receives the proxy's metrics (nil = none).
	Registerer prometheus.Registerer
	// Logger is the proxy's logger (nil = slog.Default()).
	Logger *slog.Logger
}

// Timeouts of the data path.
const (
	connectTimeout  = 5 * time.Second
	responseTimeout = 60 * time.Second
	drainTimeout    = 5 * time.Second
	clientIdle      = 30 * time.Second
)

// stickyName is the cookie marathon-lb's HAProxy inserts for HAPROXY_{n}_STICKY.
const stickyName = "mesosphere_server_id"

// hstsValue is marathon-lb's HAPROXY_{n}_USE_HSTS header value (six months).
const hstsValue = "max-age=15768000"

// Proxy is a running proxy.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	table   atomic.Pointer[Table]
	errs    atomic.Pointer[[]LabelError]
	certs   *certStore // nil without HTTPSAddr

	mu        sync.Mutex // guards clients, listeners, closed; never taken by requests
	clients   map[string]*backendClient
	apps      map[string]*appMetrics // by app, for as long as the proxy runs, like the series
	listeners map[string]*tcpListener
	tloop     *tloop // serves the TCP service ports (TCPEngine "loop"), from the first one on
	closed    bool
	conns     sync.WaitGroup // accept loops, TCP connections, upgraded tunnels
	httpPort  string
	httpsPort string

	activeMu sync.Mutex
	active   map[net.Conn]struct{}
	draining bool // set by waitConns: no new tunnel may join conns
}

// backendClient is a keep-alive pool to one backend, shared by every
// table that routes to it, and the backend's passive health.
type backendClient struct {
	addr     string
	hc       atomic.Pointer[fasthttp.HostClient] // see http
	inflight atomic.Int64
	health   outlier
}

// New returns a proxy with an empty table.
func New(cfg Config) (*Proxy, error) {
	if cfg.Group == "" {
		cfg.Group = "external"
	}
	if cfg.ServiceBind == "" {
		cfg.ServiceBind = "0.0.0.0"
	}
	if cfg.HTTPEngine == "" {
		cfg.HTTPEngine = DefaultHTTPEngine
	}
	if cfg.HTTPEngine != "fasthttp" && cfg.HTTPEngine != "loop" {
		return nil, fmt.Errorf("proxy: config: HTTPEngine %q is neither fasthttp nor loop", cfg.HTTPEngine)
	}
	if cfg.TCPEngine == "" {
		cfg.TCPEngine = DefaultTCPEngine
	}
	if cfg.TCPEngine != "go" && cfg.TCPEngine != "loop" {
		return nil, fmt.Errorf("proxy: config: TCPEngine %q is neither go nor loop", cfg.TCPEngine)
	}
	if cfg.TCPEngine == "loop" && DefaultTCPEngine != "loop" {
		return nil, fmt.Errorf("proxy: config: the loop TCP engine needs Linux (epoll); use the go engine")
	}
	if net.ParseIP(cfg.ServiceBind) == nil {
		return nil, fmt.Errorf("proxy: config: ServiceBind %q is not an IP", cfg.ServiceBind)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{cfg: cfg, log: log.With("component", "proxy"), metrics: newMetrics(cfg.Registerer),
		clients: map[string]*backendClient{}, apps: map[string]*appMetrics{}, listeners: map[string]*tcpListener{}, active: map[net.Conn]struct{}{}}
	if cfg.HTTPSAddr != "" {
		certs, err := newCertStore(cfg.SSLCertsDir, p.log, p.metrics)
		if err != nil {
			return nil, err
		}
		p.certs = certs
	} else if cfg.SSLCertsDir != "" {
		return nil, fmt.Errorf("proxy: config: SSLCertsDir without HTTPSAddr")
	}
	empty, _ := BuildTable(snapshot.Empty(), p.tableOptions())
	p.table.Store(empty)
	p.errs.Store(&[]LabelError{})
	if _, port, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
		p.httpPort = port
	}
	if _, port, err := net.SplitHostPort(cfg.HTTPSAddr); err == nil {
		p.httpsPort = port
	}
	return p, nil
}

func (p *Proxy) tableOptions() TableOptions {
	return TableOptions{Group: p.cfg.Group, HealthyOnly: p.cfg.HealthyOnly, ServiceBind: p.cfg.ServiceBind}
}

// Update builds the table of snap, swaps it in and reconciles listeners.
func (p *Proxy) Update(snap *snapshot.Snapshot) { p.update(snap, nil) }

// update is Update with extra errors (the static routes') published with
// the table, so that no reader sees one without the other.
func (p *Proxy) update(snap *snapshot.Snapshot, extra []LabelError) {
	if snap == nil {
		return
	}
	t, errs := BuildTable(snap, p.tableOptions())
	errs = append(errs, extra...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	// Attach pooled clients before publishing; drop pools nobody uses.
	used := map[string]bool{}
	var certRefs []string
	for _, r := range t.routes {
		certRefs = append(certRefs, r.SSLCerts...)
		if r.metrics = p.apps[r.App]; r.metrics == nil {
			r.metrics = newAppMetrics(p.metrics, r.App)
			p.apps[r.App] = r.metrics
		}
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
			c.closeIdle()
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
	if p.certs != nil {
		p.certs.setRefs(certRefs)
	}
}

// backendMaxConns caps each HTTP engine's connections to one backend. A
// request that finds them all busy tries the next backend, and gets 503
// when every one it may try is full: a busy backend is not a failing one,
// so this neither counts as an error nor ejects it. (A variable so that
// tests can lower it.)
var backendMaxConns = 1024

func newBackendClient(addr string) *backendClient { return &backendClient{addr: addr} }

// http returns the backend's keep-alive pool, made on the first HTTP
// request: a backend of TCP service ports only never needs one.
func (c *backendClient) http() *fasthttp.HostClient {
	if hc := c.hc.Load(); hc != nil {
		return hc
	}
	c.hc.CompareAndSwap(nil, &fasthttp.HostClient{
		Addr:                          c.addr,
		Dial:                          (&fasthttp.TCPDialer{Concurrency: 0}).Dial,
		MaxConns:                      backendMaxConns,
		MaxIdleConnDuration:           clientIdle,
		ReadTimeout:                   maxTimeout, // each request's own deadline is shorter
		WriteTimeout:                  responseTimeout,
		MaxIdemponentCallAttempts:     1,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
	})
	return c.hc.Load()
}

// closeIdle closes the pool's idle connections, if it has a pool.
func (c *backendClient) closeIdle() {
	if hc := c.hc.Load(); hc != nil {
		hc.CloseIdleConnections()
	}
}

// Run serves until ctx is done.
func (p *Proxy) Run(ctx context.Context) error {
	type server struct {
		srv *fasthttp.Server
		ln  net.Listener
	}
	var servers []server
	var loopLn *net.TCPListener // HTTPAddr's, with HTTPEngine "loop"
	closeAll := func() {
		for _, s := range servers {
			s.ln.Close()
		}
		if loopLn != nil {
			loopLn.Close()
		}
	}
	if p.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", p.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("proxy: listen %s: %w", p.cfg.HTTPAddr, err)
		}
		if p.cfg.HTTPEngine == "loop" {
			loopLn = ln.(*net.TCPListener) // taken over below, once nothing can fail
		} else {
			servers = append(servers, server{p.newServer(p.serveHTTP), ln})
		}
		p.log.Info("HTTP proxy listening", "addr", ln.Addr().String(), "group", p.cfg.Group, "engine", p.cfg.HTTPEngine)
	}
	if p.cfg.HTTPSAddr != "" {
		ln, err := net.Listen("tcp", p.cfg.HTTPSAddr)
		switch {
		case err != nil && p.cfg.HTTPSOptional:
			p.log.Warn("HTTPS proxy disabled: cannot listen on its default address", "addr", p.cfg.HTTPSAddr, "err", err)
		case err != nil:
			closeAll()
			return fmt.Errorf("proxy: listen %s: %w", p.cfg.HTTPSAddr, err)
		default:
			tln := tls.NewListener(ln, &tls.Config{GetCertificate: p.certs.getCertificate, MinVersion: tls.VersionTLS12,
				NextProtos: []string{"http/1.1"}})
			servers = append(servers, server{p.newServer(p.serveHTTPS), tln})
			p.log.Info("HTTPS proxy listening", "addr", ln.Addr().String(), "certs", p.cfg.SSLCertsDir)
		}
	}
	running := len(servers)
	errc := make(chan error, running+1)
	if loopLn != nil {
		lp, err := newLoop(p, loopLn, p.newServer(p.serveHTTP))
		if err != nil {
			closeAll()
			return err
		}
		running++
		go func() { errc <- lp.run(ctx) }() // nil once ctx is done and its requests drained
	}
	for _, s := range servers {
		go func() { errc <- s.srv.Serve(s.ln) }()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		if p.certs == nil {
			return
		}
		// Without a watcher the certificates still serve; they only stop
		// following their files.
		if err := p.certs.watch(wctx); err != nil {
			p.log.Error("certificates will not be reloaded", "err", err)
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
		if err != nil { // the loop's nil: it saw ctx first
			err = fmt.Errorf("proxy: serve: %w", err)
		}
	}
	stopWatch()
	p.mu.Lock()
	p.closed = true
	for key, l := range p.listeners {
		l.close()
		delete(p.listeners, key)
	}
	if p.tloop != nil {
		p.tloop.stop() // it ends when its connections have (waitConns waits)
	}
	p.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	for _, s := range servers {
		_ = s.srv.ShutdownWithContext(sctx)
	}
	cancel()
	// Serve may not have registered a listener before the shutdown:
	// closing them ourselves makes sure every Serve returns.
	closeAll()
	for ; running > 0; running-- {
		<-errc
	}
	<-watchDone
	p.waitConns()
	// Nothing will use the backend pools again: close their idle
	// connections now rather than when they time out.
	p.mu.Lock()
	for _, c := range p.clients {
		c.closeIdle()
	}
	p.mu.Unlock()
	return err
}

func (p *Proxy) newServer(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:                       h,
		Name:                          "keel",
		ReadTimeout:                   responseTimeout,
		WriteTimeout:                  responseTimeout,
		IdleTimeout:                   2 * time.Minute,
		StreamRequestBody:             true,      // bodies stream through (stream.go), of any size
		MaxRequestBodySize:            smallBody, // what is read ahead of a streamed body
		DisablePreParseMultipartForm:  true,
		ReadBufferSize:                maxHeaderBytes + 4<<10, // headers plus a long request line; more is a 431
		DisableHeaderNamesNormalizing: true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{p.log},
	}
}

type fasthttpLogger struct{ log *slog.Logger }

// Printf logs fasthttp's messages at debug level.
func (l fasthttpLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

// serveHTTP proxies one request of the plain HTTP listener.
func (p *Proxy) serveHTTP(ctx *fasthttp.RequestCtx) { p.serve(ctx, false) }

// serveHTTPS proxies one request of the HTTPS listener.
func (p *Proxy) serveHTTPS(ctx *fasthttp.RequestCtx) { p.serve(ctx, true) }

// serve proxies one request by its Host header and path.
func (p *Proxy) serve(ctx *fasthttp.RequestCtx, secure bool) {
	start := ctx.Time() // the server's clock reading when the request arrived
	req := &ctx.Request
	if code, reason := checkHeaders(req.Header.RawHeaders()); code != 0 {
		p.metrics.rejected.WithLabelValues(reason).Inc()
		ctx.SetConnectionClose()
		ctx.Error(fasthttp.StatusMessage(code)+"\n", code)
		return
	}
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
	if r.RedirectHTTPS && !secure {
		p.redirect(ctx, host)
		p.observe(r, fasthttp.StatusMovedPermanently, start)
		return
	}
	if r.auth != nil && !r.auth.check(req.Header.Peek("Authorization")) {
		ctx.Error("unauthorized\n", fasthttp.StatusUnauthorized)
		ctx.Response.Header.Set("WWW-Authenticate", r.auth.challenge) // after Error, which resets headers
		p.observe(r, fasthttp.StatusUnauthorized, start)
		return
	}
	if len(r.Backends) == 0 {
		p.observe(r, fasthttp.StatusServiceUnavailable, start)
		ctx.Error("no healthy backend\n", fasthttp.StatusServiceUnavailable)
		return
	}
	if r.MaxConns > 0 {
		if r.active.Add(1) > int64(r.MaxConns) {
			r.active.Add(-1)
			p.observe(r, fasthttp.StatusServiceUnavailable, start)
			ctx.Error("too many connections\n", fasthttp.StatusServiceUnavailable)
			return
		}
		defer endRequest(r.active, &ctx.Response) // a streaming body ends later
	}
	var hs hopScan
	scanRequest(req.Header.RawHeaders(), &hs)
	var upgrade string
	if hs.websocket() {
		upgrade = string(hs.upgrade)
	}
	for i := range hs.drop.len() {
		req.Header.DelBytes(hs.drop.at(i))
	}
	req.Header.ResetConnectionClose() // the backend connection stays reusable
	var buf [128]byte                 // on the stack unless a long chain of proxies came before
	xff := buf[:0]
	for i := range hs.xff.len() {
		xff = append(append(xff, hs.xff.at(i)...), ", "...)
	}
	if ip, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
		xff = ip.Unmap().AppendTo(xff)
	}
	req.Header.SetBytesV("X-Forwarded-For", xff)
	req.Header.SetBytesV("X-Forwarded-Host", ctx.Host())
	port := p.httpPort
	if secure {
		req.Header.Set("X-Forwarded-Proto", "https")
		req.URI().SetScheme("http") // TLS ends here: the backend is plain HTTP
		port = p.httpsPort
	} else {
		req.Header.Set("X-Forwarded-Proto", "http")
	}
	if port != "" {
		req.Header.Set("X-Forwarded-Port", port)
	}
	if r.RewriteFrom != "" {
		rewritePath(req, r.RewriteFrom, r.RewriteTo)
	}
	first, sticky := p.first(r, req, ctx.RemoteIP())
	if upgrade != "" {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", upgrade)
		p.tunnel(ctx, r, first, start)
		return
	}
	resp := &ctx.Response
	streamed, err := prepareBody(req)
	if err != nil {
		p.log.Debug("bad request body", "app", r.App, "err", err)
		ctx.SetConnectionClose()
		ctx.Error(fasthttp.StatusMessage(fasthttp.StatusBadRequest)+"\n", fasthttp.StatusBadRequest)
		p.observe(r, fasthttp.StatusBadRequest, start)
		return
	}
	used := -1
	now := start.UnixNano()
	tries := attempts{r: r, first: first}
	for {
		i, ok := tries.next(now)
		if !ok {
			break
		}
		b := &r.Backends[i]
		used = i
		b.client.inflight.Add(1)
		err = forward(ctx.Conn(), b.client.http(), req, resp, r.ResponseTimeout)
		endRequest(&b.client.inflight, resp)
		if err == nil {
			if resp.StatusCode() >= 500 {
				p.fail(b)
			} else {
				b.client.health.success()
			}
			break
		}
		if errors.Is(err, errClientBody) {
			break // not the backend's fault
		}
		if errors.Is(err, fasthttp.ErrNoFreeConns) {
			continue // busy, not broken: the next backend
		}
		p.fail(b)
		p.metrics.backendErrors.WithLabelValues(r.App).Inc()
		if !(retriable(err) || (idempotent(req.Header.Method()) && !errors.Is(err, fasthttp.ErrTimeout))) {
			break
		}
		if streamed && !req.IsBodyStream() {
			break // the body went to the failed backend: there is none to resend
		}
	}
	if err != nil {
		p.log.Debug("backend error", "app", r.App, "err", err)
		resp.Reset()
		code := fasthttp.StatusBadGateway
		switch {
		case errors.Is(err, errClientBody):
			code = fasthttp.StatusBadRequest
			ctx.SetConnectionClose()
		case errors.Is(err, fasthttp.ErrTimeout):
			code = fasthttp.StatusGatewayTimeout
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			code = fasthttp.StatusServiceUnavailable
		}
		ctx.Error(fasthttp.StatusMessage(code)+"\n", code)
		p.observe(r, code, start)
		return
	}
	cleanResponse(&resp.Header)
	if r.Sticky && used != sticky {
		c := fasthttp.AcquireCookie()
		c.SetKey(stickyName)
		c.SetValue(r.Backends[used].cookie)
		c.SetPath("/")
		resp.Header.SetCookie(c)
		fasthttp.ReleaseCookie(c)
	}
	if secure && r.HSTS {
		resp.Header.Set("Strict-Transport-Security", hstsValue)
	}
	p.observe(r, resp.StatusCode(), start)
}

// attempts walks the backends one request may try: from first on, at
// most 1+Retries of them. Ejected backends are passed over, unless every
// backend is ejected: then trying one beats refusing the request.
type attempts struct {
	r            *Route
	first        int
	pass, k, try int
}

// next returns the index of the next backend to try, or false when the
// request has had its tries.
func (a *attempts) next(now int64) (int, bool) {
	n, tries := len(a.r.Backends), 1+a.r.Retries
	for ; a.pass < 2; a.pass, a.k = a.pass+1, 0 {
		if a.pass == 1 && a.try > 0 {
			return 0, false
		}
		for a.k < n && a.try < tries {
			i := (a.first + a.k) % n
			a.k++
			if a.pass == 0 && !a.r.Backends[i].client.health.available(now) {
				continue
			}
			a.try++
			return i, true
		}
	}
	return 0, false
}

// first picks the first backend to try: the one the sticky cookie names
// while it is in the table and not ejected, else by the balance
// algorithm. It returns the sticky backend's index too (-1 = none).
func (p *Proxy) first(r *Route, req *fasthttp.Request, client net.IP) (int, int) {
	if r.Sticky {
		if v := req.Header.Cookie(stickyName); len(v) > 0 {
			for i := range r.Backends {
				if r.Backends[i].cookie == string(v) {
					// Like HAProxy's "insert indirect": the backend never
					// sees the proxy's cookie.
					req.Header.DelCookie(stickyName)
					if r.Backends[i].client.health.available(time.Now().UnixNano()) {
						return i, i
					}
					break
				}
			}
		}
	}
	return pick(r, client), -1
}

// fail records a failure of b and counts an ejection.
func (p *Proxy) fail(b *Backend) {
	if b.client.health.failure(time.Now()) {
		p.metrics.ejections.Inc()
		p.log.Warn("ejecting failing backend", "addr", b.Addr, "task", b.TaskID)
	}
}

// redirect answers 301 to the https URL of the request.
func (p *Proxy) redirect(ctx *fasthttp.RequestCtx, host string) {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if p.httpsPort != "" && p.httpsPort != "443" {
		host += ":" + p.httpsPort
	}
	ctx.Response.Header.Set("Location", "https://"+host+string(ctx.RequestURI()))
	ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
}

// rewritePath replaces the prefix from of the request path with to,
// keeping the query.
func rewritePath(req *fasthttp.Request, from, to string) {
	uri := req.Header.RequestURI()
	if !hasPrefix(uri, from) {
		return
	}
	var buf [256]byte
	b := append(append(buf[:0], to...), uri[len(from):]...)
	if len(b) > 1 && b[0] == '/' && b[1] == '/' {
		b = b[1:] // "/old:/" applied to "/old/x" must not make a scheme-relative "//x"
	}
	req.SetRequestURIBytes(b)
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

// codeClasses are the code_class label values, without a per-request
// allocation.
var codeClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (p *Proxy) observe(r *Route, code int, start time.Time) {
	if r.metrics != nil {
		r.metrics.request(code, time.Since(start).Seconds())
		return
	}
	class := "other"
	if c := code / 100; c >= 0 && c < len(codeClasses) {
		class = codeClasses[c]
	}
	p.metrics.requests.WithLabelValues(r.App, class).Inc()
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
