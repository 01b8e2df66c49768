//go:build linux

package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// The loop engine serves the plain HTTP listener from one edge-triggered
// epoll loop. It takes only the common request (HTTP/1.1,
// origin-form target, a body of known length already buffered, a route with
// none of the per-request features), and reads a socket only after epoll
// said it is readable: a read that filled less than the buffer means the
// socket is drained, so the loop waits for the next edge instead of reading
// again to be told EAGAIN. Every other request, and the rest of its
// connection, goes to the fasthttp server unchanged (handoff).

// DefaultHTTPEngine is the engine of a Config that names none: the loop
// where it exists.
const DefaultHTTPEngine = "loop"

// Limits of the loop engine.
const (
	loopReadBuffer  = maxHeaderBytes + 4<<10 // as the fasthttp server's ReadBufferSize
	loopRespBuffer  = 32 << 10               // backend reads; a response head must fit
	loopEvents      = 256
	loopSweep       = 250 * time.Millisecond
	loopSpin        = 5 * time.Millisecond // a busy loop's wait, under the scheduler's 10 ms preemption tick
	loopHeadTimeout = responseTimeout      // a request head must arrive within this
	loopClientIdle  = 2 * time.Minute      // between requests, as the server's IdleTimeout
	loopMaxIdle     = 1024                 // pooled idle connections per backend address
	loopFreeBufs    = 256                  // closed clients' buffers kept for new ones
	loopFairShare   = 128 << 10            // bytes a client is sent in one turn; then the others ready have theirs
)

// Response framings.
const (
	frameNone   = iota // no body
	frameLength        // Content-Length
	frameChunked
	frameClose // until the backend closes
)

// lclient is one client connection of the loop.
type lclient struct {
	fd       int
	gen      int32
	ip       net.IP // as the fasthttp path sees it (4 or 16 bytes)
	ipText   []byte
	buf      []byte // what the client sent and the loop has not used yet
	n        int
	scan     int // the head is scanned up to here (start of a line)
	readable bool
	writable bool
	hup      bool // the peer closed: a short read is no sign of a drained socket
	closed   bool // out of the loop: closed, or handed to the fasthttp server
	queued   bool // in loop.later
	deadline time.Time
	out      []byte // response head (and a first piece of body) for the client
	pend     []byte // bytes still to write to the client
	rq       lrequest
}

// lrequest is the request a client connection has in flight.
type lrequest struct {
	busy        bool
	done        bool // the response is complete; pend still drains
	r           *Route
	start       time.Time
	size        int    // head + body in the client's buffer
	fwd         []byte // the request as the backend gets it
	method      []byte
	isHead      bool
	clientClose bool
	tries       attempts // the backends to try, in order
	b           *Backend
	be          *lbackend
	inflight    bool // b.client.inflight counts this attempt
	freshRetry  bool // a reused connection failed and a new one took over
	got         bool // a byte of the response arrived
	sentHead    bool // the final response head went to the client
	code        int
	frame       int
	remaining   int64
	chunks      chunkState
	beClose     bool // the backend connection cannot be reused
	closeClient bool
	full        bool // the last backend tried had all its connections busy
}

// lbackend is one backend connection, in use by a client or idle in the pool.
type lbackend struct {
	fd         int
	gen        int32
	addr       string
	c          *lclient // nil while idle
	connecting bool
	reused     bool
	readable   bool
	writable   bool
	hup        bool
	wrote      int
	buf        []byte
	n          int
	idleSince  time.Time
}

type loop struct {
	poller
	addrCache
	p        *Proxy
	srv      *fasthttp.Server
	lfd      int
	clients  map[int]*lclient
	backends map[int]*lbackend
	idle     map[string][]*lbackend
	open     map[string]int // backend connections by address, in use or idle
	swept    time.Time
	draining bool
	drainEnd time.Time
	stalled  bool // an accept failed: the sweep tries again
	scratch  [256]byte
	freeBufs []clientBufs // buffers of closed clients, for the next ones
	later    []*lclient   // clients that had their fair share and have more to send
	spare    []*lclient   // later's other slice
	handoffs atomic.Int64 // connections given to the fasthttp server, for tests and debugging
	yields   atomic.Int64 // turns ended by the fair share, for tests and debugging
}

// newLoop takes over ln (it is closed, even on error; the loop keeps a
// duplicate of its socket) and returns a loop that serves it, handing
// what it does not take to fallback.
func newLoop(p *Proxy, ln *net.TCPListener, fallback *fasthttp.Server) (_ *loop, err error) {
	l := &loop{poller: noPoller, p: p, srv: fallback, lfd: -1,
		clients: map[int]*lclient{}, backends: map[int]*lbackend{}, idle: map[string][]*lbackend{}, open: map[string]int{}}
	defer func() {
		if err != nil {
			l.closeFDs()
			err = fmt.Errorf("proxy: loop: %w", err)
		}
	}()
	if l.lfd, err = takeListener(ln); err != nil {
		return nil, err
	}
	if err := l.poller.open(loopSweep); err != nil {
		return nil, err
	}
	if err := l.add(l.lfd, 0, unix.EPOLLIN); err != nil {
		return nil, err
	}
	return l, nil
}

// run serves until ctx is done, then stops accepting, lets requests in
// flight finish for up to drainTimeout and closes every socket it holds.
// Connections handed to the fasthttp server are the proxy's (p.conns).
//
// The goroutine waits in epoll_wait as a raw system call, on a P of its
// own (see loop_sys_linux.go). It does not lock its thread: when the
// scheduler preempts it (every 10 ms of running), a locked goroutine
// costs two thread hand-offs to resume, an unlocked one none.
func (l *loop) run(ctx context.Context) error {
	addLoopProc(1)
	defer addLoopProc(-1)
	stopWake := l.wakeOnDone(ctx)
	defer func() {
		stopWake()
		l.closeAll()
	}()
	l.swept = l.now
	for {
		evs, woken, err := l.poll(len(l.later) == 0)
		if err != nil {
			return fmt.Errorf("proxy: loop: %w", err)
		}
		if woken {
			l.drain()
		}
		for _, ev := range evs {
			if ev.Pad == 0 && int(ev.Fd) == l.lfd {
				l.accept()
			} else {
				l.event(ev)
			}
		}
		l.resume()
		if l.now.Sub(l.swept) >= loopSweep {
			l.swept = l.now
			l.sweep()
		}
		if l.draining && (l.now.After(l.drainEnd) || !l.inFlight()) {
			return nil
		}
	}
}

// drain starts the shutdown: no more connections, idle ones closed.
func (l *loop) drain() {
	if l.draining {
		return
	}
	l.draining = true
	l.drainEnd = l.now.Add(drainTimeout)
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.lfd, nil)
	unix.Close(l.lfd)
	l.lfd = -1
	for _, c := range l.clients {
		if !c.rq.busy && c.n == 0 {
			l.closeClient(c)
		}
	}
}

func (l *loop) inFlight() bool {
	for _, c := range l.clients {
		if c.rq.busy || c.n > 0 {
			return true
		}
	}
	return false
}

func (l *loop) accept() { l.p.acceptAll(l.lfd, &l.stalled, "http", l.newClient) }

// newClient takes on the client connection fd, from ip.
func (l *loop) newClient(fd int, ip []byte) {
	bufs := l.clientBuffers()
	c := &lclient{fd: fd, gen: l.nextGen(), ip: net.IP(ip), buf: bufs.buf, out: bufs.out, deadline: l.now.Add(loopClientIdle)}
	c.rq.fwd = bufs.fwd
	if ip, ok := netip.AddrFromSlice(c.ip); ok {
		c.ipText = ip.Unmap().AppendTo(nil)
	}
	if err := l.add(fd, c.gen, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP); err != nil {
		unix.Close(fd)
		return
	}
	l.clients[fd] = c
}

func (l *loop) event(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	in := ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	out := ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
	hup := ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	if c := l.clients[fd]; c != nil && c.gen == ev.Pad {
		c.hup = c.hup || hup
		c.readable = c.readable || in
		c.writable = c.writable || out
		l.step(c)
		return
	}
	be := l.backends[fd]
	if be == nil || be.gen != ev.Pad {
		return // closed earlier in this batch
	}
	if be.c == nil {
		// An idle pooled connection has nothing to say: if it has a byte
		// to read, or an end, the backend closed it or is out of step.
		// (The event may also be a late edge of bytes already read.)
		if in {
			var b [1]byte
			if _, _, err := unix.Recvfrom(be.fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT); err != unix.EAGAIN {
				l.unpool(be)
				l.closeBackend(be)
			}
		}
		return
	}
	be.hup = be.hup || hup
	be.readable = be.readable || in
	be.writable = be.writable || out
	c := be.c
	if be.connecting && out {
		be.connecting = false
		if soerr, err := unix.GetsockoptInt(be.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
			l.connFailed(c)
			l.step(c)
			return
		}
		c.deadline = l.now.Add(connectTimeout) // the write's own, replaced when it is done
	}
	l.step(c)
}

// resume gives the clients that had their fair share their next turn.
func (l *loop) resume() {
	takeTurns(&l.later, &l.spare, func(c *lclient) {
		c.queued = false
		l.step(c)
	})
}

// step moves a client connection and its request forward until it has to
// wait for an event, or it has been sent its fair share of bytes: then it
// waits for the other clients ready, so that one long response does not
// hold up every other request (its turn resumes after the batch, with its
// readiness as it was: no edge is lost).
func (l *loop) step(c *lclient) {
	sent := 0
	for !c.closed {
		rq := &c.rq
		if len(c.pend) > 0 {
			if !c.writable {
				return
			}
			n, err := rawWrite(c.fd, c.pend)
			if err == unix.EAGAIN {
				c.writable = false
				return
			}
			if err != nil {
				l.abort(c)
				return
			}
			if n < len(c.pend) {
				c.writable = false // the socket buffer is full: wait for the edge
			}
			c.pend = c.pend[n:]
			if rq.busy {
				c.deadline = l.now.Add(rq.r.ResponseTimeout)
			}
			if sent += n; sent >= loopFairShare && c.writable {
				if !c.queued {
					c.queued = true
					l.later = append(l.later, c)
					l.yields.Add(1)
				}
				return
			}
			continue
		}
		if rq.busy {
			if rq.done {
				l.endRequest(c)
				continue
			}
			if !l.stepBackend(c) {
				return
			}
			continue
		}
		if c.n > 0 {
			end, crlf, ok := l.headEnd(c)
			if ok {
				if !crlf || !l.dispatch(c, end) {
					l.handoff(c)
					return
				}
				continue
			}
			if c.n == len(c.buf) {
				l.handoff(c) // too long for the loop: fasthttp says 431
				return
			}
		}
		if !c.readable {
			return
		}
		if l.draining && c.n == 0 {
			l.closeClient(c)
			return
		}
		n, err := rawRead(c.fd, c.buf[c.n:])
		switch {
		case err == unix.EAGAIN:
			c.readable = false
			return
		case err != nil || n == 0:
			l.closeClient(c)
			return
		}
		if c.n == 0 {
			c.deadline = l.now.Add(loopHeadTimeout)
		}
		if c.n+n < len(c.buf) && !c.hup {
			c.readable = false
		}
		c.n += n
	}
}

// headEnd finds the end of the request head in the client's buffer. crlf
// is false when a line ended in a bare LF (left to fasthttp).
func (l *loop) headEnd(c *lclient) (end int, crlf, ok bool) {
	crlf = true
	for {
		i := bytes.IndexByte(c.buf[c.scan:c.n], '\n')
		if i < 0 {
			return 0, false, false
		}
		nl := c.scan + i
		if nl == 0 || c.buf[nl-1] != '\r' {
			crlf = false
		}
		line := nl - c.scan
		c.scan = nl + 1
		if line == 0 || (line == 1 && c.buf[nl-1] == '\r') {
			if c.scan > 2 && line == 0 {
				crlf = false
			}
			end, c.scan = c.scan, 0
			return end, crlf, true
		}
		if !crlf {
			c.scan = 0
			return c.scan, false, true
		}
	}
}

// dispatch takes the request whose head ends at end, or reports false to
// hand the connection off.
func (l *loop) dispatch(c *lclient, end int) bool {
	head := c.buf[:end]
	lineEnd := bytes.IndexByte(head, '\n') + 1
	method, target, ok := requestLine(head[:lineEnd])
	if !ok {
		return false
	}
	raw := head[lineEnd:]
	if code, _ := checkHeaders(raw); code != 0 {
		return false // fasthttp refuses it, and counts it
	}
	var host, cl []byte
	hosts, cls := 0, 0
	odd := false
	eachHeader(raw, func(name, value []byte) {
		switch {
		case equalFold(name, "host"):
			host = value
			hosts++
		case equalFold(name, "content-length"):
			cl = value
			cls++
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"):
			odd = true
		}
	})
	if odd || hosts != 1 || len(host) == 0 {
		return false
	}
	body := 0
	if cl != nil {
		if cls > 1 || bytes.IndexByte(cl, ',') >= 0 {
			return false // fasthttp refuses a repeated length, even the same one
		}
		n, err := strconv.Atoi(string(cl))
		if err != nil || n > smallBody || n > c.n-end {
			return false
		}
		body = n
	}
	var hs hopScan
	scanRequest(raw, &hs)
	if len(hs.upgrade) > 0 {
		return false
	}
	h := l.lowerHost(host)
	if h == nil {
		return false
	}
	t := l.p.table.Load()
	vh := t.lookup(unsafe.String(unsafe.SliceData(h), len(h))) // not kept past the call
	if vh == nil {
		return false
	}
	path := target
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	r := vh.match(path)
	if r == nil || r.RedirectHTTPS || r.auth != nil || r.Sticky || r.RewriteFrom != "" || r.MaxConns > 0 || len(r.Backends) == 0 {
		return false
	}
	if !l.literal(t, r) {
		return false // a name, not an address: fasthttp resolves it
	}

	rq := &c.rq
	fwd := rq.fwd[:0]
	*rq = lrequest{busy: true, r: r, start: l.now, size: end + body, method: method, fwd: fwd}
	rq.isHead = string(method) == "HEAD"
	for i := range hs.conn.len() {
		if hasToken(hs.conn.at(i), "close") {
			rq.clientClose = true
		}
	}
	fwd = append(fwd, head[:lineEnd]...)
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		line := raw[:i+1]
		raw = raw[i+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			break // the blank line
		}
		if dropped(&hs.drop, line[:colon]) {
			continue
		}
		fwd = append(fwd, line...)
	}
	fwd = append(fwd, "X-Forwarded-For: "...)
	for i := range hs.xff.len() {
		fwd = append(append(fwd, hs.xff.at(i)...), ", "...)
	}
	fwd = append(fwd, c.ipText...)
	fwd = append(append(append(fwd, "\r\nX-Forwarded-Host: "...), host...), "\r\nX-Forwarded-Proto: http\r\n"...)
	if l.p.httpPort != "" {
		fwd = append(append(append(fwd, "X-Forwarded-Port: "...), l.p.httpPort...), "\r\n"...)
	}
	fwd = append(fwd, "\r\n"...)
	rq.fwd = append(fwd, c.buf[end:end+body]...)
	rq.tries = attempts{r: r, first: pick(r, c.ip)}
	l.attempt(c)
	return true
}

// requestLine parses "METHOD SP origin-form SP HTTP/1.1 CRLF".
func requestLine(line []byte) (method, target []byte, ok bool) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return nil, nil, false
	}
	method, line = line[:sp], line[sp+1:]
	for _, ch := range method {
		if !tchar[ch] {
			return nil, nil, false
		}
	}
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" || line[0] != '/' {
		return nil, nil, false
	}
	target = line[:sp]
	for _, ch := range target {
		if ch <= ' ' || ch == 0x7f {
			return nil, nil, false
		}
	}
	return method, target, true
}

func dropped(drop *nameList, name []byte) bool {
	for i := range drop.len() {
		if bytes.Equal(drop.at(i), name) {
			return true
		}
	}
	return false
}

// lowerHost is the Host value without its port, lowercased, in the
// loop's scratch buffer (nil when it does not fit).
func (l *loop) lowerHost(h []byte) []byte {
	switch {
	case len(h) > 0 && h[0] == '[':
		if i := bytes.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	default:
		if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[:i], ':') < 0 {
			h = h[:i]
		}
	}
	if len(h) > len(l.scratch) {
		return nil
	}
	out := l.scratch[:len(h)]
	for i, ch := range h {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		out[i] = ch
	}
	return out
}

// attempt sends the request to the next backend to try, or answers 502
// when none is left.
func (l *loop) attempt(c *lclient) {
	rq := &c.rq
	for {
		i, ok := rq.tries.next(l.now.UnixNano())
		if !ok {
			if rq.full {
				l.answer(c, fasthttp.StatusServiceUnavailable)
			} else {
				l.answer(c, fasthttp.StatusBadGateway)
			}
			return
		}
		b := &rq.r.Backends[i]
		rq.b, rq.got, rq.freshRetry, rq.full = b, false, false, false
		if be := l.takeIdle(b.Addr); be != nil {
			b.client.inflight.Add(1)
			rq.inflight = true
			l.use(c, be)
			return
		}
		if l.open[b.Addr] >= backendMaxConns {
			rq.full = true // busy, not broken: the next backend (see backendMaxConns)
			continue
		}
		b.client.inflight.Add(1)
		rq.inflight = true
		if l.dial(c) {
			return
		}
		l.attemptDone(c, false)
		l.backendError(c)
	}
}

// dial opens a new connection to rq.b for c.
func (l *loop) dial(c *lclient) bool {
	rq := &c.rq
	fd, connecting, err := connectNonblock(l.sockaddr(rq.b.Addr))
	if err != nil {
		return false
	}
	be := &lbackend{fd: fd, gen: l.nextGen(), addr: rq.b.Addr, buf: make([]byte, loopRespBuffer)}
	if err := l.add(fd, be.gen, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP); err != nil {
		unix.Close(fd)
		return false
	}
	l.backends[fd] = be
	l.open[be.addr]++
	be.connecting = connecting
	be.writable = !connecting
	l.use(c, be)
	if be.connecting {
		c.deadline = l.now.Add(connectTimeout)
	}
	return true
}

// use puts be to work for c's request.
func (l *loop) use(c *lclient, be *lbackend) {
	be.c, be.wrote, be.n = c, 0, 0
	c.rq.be = be
	c.rq.frame = -1 // no head yet
	c.rq.beClose, c.rq.code, c.rq.sentHead = false, 0, false
	c.deadline = l.now.Add(connectTimeout)
}

// stepBackend moves the request on its backend connection; false means
// wait for an event.
func (l *loop) stepBackend(c *lclient) bool {
	rq := &c.rq
	be := rq.be
	if be == nil || be.connecting {
		return false
	}
	if be.wrote < len(rq.fwd) {
		if !be.writable {
			return false
		}
		n, err := rawWrite(be.fd, rq.fwd[be.wrote:])
		if err == unix.EAGAIN {
			be.writable = false
			return false
		}
		if err != nil {
			l.ioFailed(c, false)
			return true
		}
		be.wrote += n
		if be.wrote < len(rq.fwd) {
			be.writable = false
			return false
		}
		c.deadline = l.now.Add(rq.r.ResponseTimeout)
		return true
	}
	if !be.readable {
		return false
	}
	n, err := rawRead(be.fd, be.buf[be.n:])
	if err == unix.EAGAIN {
		be.readable = false
		return false
	}
	if err != nil || n == 0 {
		if err == nil && rq.frame == frameClose {
			rq.beClose = true
			l.responseDone(c)
			return true
		}
		l.ioFailed(c, false)
		return true
	}
	if be.n+n < len(be.buf) && !be.hup {
		be.readable = false
	}
	rq.got = true
	c.deadline = l.now.Add(rq.r.ResponseTimeout)
	if rq.frame >= 0 {
		l.body(c, be.buf[:n], false)
		return true
	}
	be.n += n
	l.heads(c)
	return true
}

// heads parses the response heads in be.buf: interim ones are forwarded,
// the final one starts the body.
func (l *loop) heads(c *lclient) {
	rq := &c.rq
	be := rq.be
	c.out = c.out[:0]
	for rq.frame < 0 {
		end := headLen(be.buf[:be.n])
		if end < 0 {
			if be.n == len(be.buf) {
				l.badResponse(c)
				return
			}
			c.pend = c.out
			return
		}
		code, ok := l.responseHead(c, be.buf[:end])
		if !ok {
			l.badResponse(c)
			return
		}
		rest := be.buf[end:be.n]
		if code < 200 {
			// 1xx: forwarded; the final response follows.
			be.n = copy(be.buf, rest)
			continue
		}
		rq.code, rq.sentHead = code, true
		be.n = 0
		l.body(c, rest, true)
		return
	}
}

// headLen is the length of the head at the start of b, up to and
// including its empty line (CRLF or a bare LF), or -1.
func headLen(b []byte) int {
	for start := 0; start < len(b); {
		i := bytes.IndexByte(b[start:], '\n')
		if i < 0 {
			return -1
		}
		if i == 0 || (i == 1 && b[start] == '\r') {
			if start == 0 {
				return -1 // an empty first line is no status line
			}
			return start + i + 1
		}
		start += i + 1
	}
	return -1
}

// responseHead appends the cleaned response head to c.out, sets the
// request's framing for a final response and returns the status code.
func (l *loop) responseHead(c *lclient, head []byte) (int, bool) {
	rq := &c.rq
	lineEnd := bytes.IndexByte(head, '\n') + 1
	status := head[:lineEnd]
	if len(status) < 14 || !bytes.HasPrefix(status, []byte("HTTP/1.")) || status[8] != ' ' ||
		(status[12] != ' ' && status[12] != '\r') {
		return 0, false
	}
	code := 0
	for _, ch := range status[9:12] {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		code = code*10 + int(ch-'0')
	}
	if code < 100 || code == fasthttp.StatusSwitchingProtocols {
		return 0, false // the loop never asks for an upgrade
	}
	raw := head[lineEnd:]
	var conn nameList
	var cl []byte
	te, keepAlive, server, bad := false, false, false, false
	for rest := raw; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := bytes.TrimSuffix(rest[:i], []byte{'\r'})
		rest = rest[i+1:]
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			bad = true
			break
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, ch := range name {
			if !tchar[ch] {
				bad = true
			}
		}
		switch {
		case equalFold(name, "server"):
			server = true
		case equalFold(name, "connection"):
			conn.add(value)
			if hasToken(value, "close") {
				rq.beClose = true
			}
			keepAlive = keepAlive || hasToken(value, "keep-alive")
		case equalFold(name, "content-length"):
			if cl != nil && !bytes.Equal(cl, value) {
				bad = true
			}
			cl = value
		case equalFold(name, "transfer-encoding"):
			if te {
				bad = true
			}
			te = true
			if i := bytes.LastIndexByte(value, ','); i >= 0 {
				value = trimOWS(value[i+1:])
			}
			if !bytes.EqualFold(value, []byte("chunked")) {
				rq.frame = frameClose // not a framing the loop can follow
			}
		}
	}
	if bad || (te && cl != nil) {
		return 0, false
	}
	if status[7] == '0' && !keepAlive {
		rq.beClose = true // HTTP/1.0 closes unless it says otherwise
	}
	final := code >= 200
	if final {
		switch {
		case rq.isHead || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified:
			rq.frame = frameNone
		case te && rq.frame == frameClose:
		case te:
			rq.frame, rq.chunks = frameChunked, chunkState{}
		case cl != nil:
			n, err := strconv.ParseInt(string(cl), 10, 64)
			if err != nil || n < 0 {
				return 0, false
			}
			rq.frame, rq.remaining = frameLength, n
		default:
			rq.frame = frameClose
		}
		if rq.frame == frameClose {
			rq.beClose = true
		}
	} else if te || cl != nil {
		return 0, false
	}
	more := namesMore(&conn)
	out := append(c.out, status...)
	for rest := raw; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			break
		}
		name := line[:colon]
		if isOneOf(name, hopNames[:]) || (more && connectionNames(&conn, name)) {
			continue
		}
		out = append(out, line...)
	}
	if !server {
		out = append(out, "Server: keel\r\n"...) // as the fasthttp server adds its Name
	}
	if final && (rq.clientClose || rq.frame == frameClose || l.draining) {
		rq.closeClient = true
		out = append(out, "Connection: close\r\n"...)
	}
	c.out = append(out, "\r\n"...)
	return code, true
}

// body relays b, bytes of the response body, as far as the framing
// goes; first says c.out holds the head to send before them.
func (l *loop) body(c *lclient, b []byte, first bool) {
	rq := &c.rq
	used, end := len(b), false
	switch rq.frame {
	case frameNone:
		used, end = 0, true
	case frameLength:
		if int64(used) >= rq.remaining {
			used, end = int(rq.remaining), true
		}
		rq.remaining -= int64(used)
	case frameChunked:
		var err error
		used, end, err = rq.chunks.feed(b)
		if err != nil {
			if first {
				l.badResponse(c)
			} else {
				l.ioFailed(c, false)
			}
			return
		}
	}
	if used < len(b) {
		rq.beClose = true // more than the response: the connection is out of step
	}
	if first {
		c.out = append(c.out, b[:used]...)
		c.pend = c.out
	} else {
		c.pend = b[:used]
	}
	if end {
		l.responseDone(c)
	}
}

// responseDone ends the attempt after a complete response: the backend
// connection goes back to the pool if it can.
func (l *loop) responseDone(c *lclient) {
	rq := &c.rq
	be := rq.be
	rq.be = nil
	if be != nil {
		if rq.beClose || be.n != 0 || l.draining {
			l.closeBackend(be)
		} else {
			l.pool(be)
		}
	}
	l.attemptDone(c, rq.code < 500)
	rq.done = true
}

// attemptDone ends the count of an attempt on rq.b and records its health.
func (l *loop) attemptDone(c *lclient, ok bool) {
	rq := &c.rq
	if !rq.inflight {
		return
	}
	rq.inflight = false
	rq.b.client.inflight.Add(-1)
	if ok {
		rq.b.client.health.success()
	} else {
		l.p.fail(rq.b)
	}
}

func (l *loop) backendError(c *lclient) {
	l.p.metrics.backendErrors.WithLabelValues(c.rq.r.App).Inc()
}

// connFailed: the connection to the backend could not be made (error or
// timeout). The request never reached it, so the next backend may take it.
func (l *loop) connFailed(c *lclient) {
	l.failAttempt(c)
	l.attempt(c)
}

// failAttempt closes the request's backend connection, if it has one, and
// counts the attempt as the backend's failure.
func (l *loop) failAttempt(c *lclient) {
	rq := &c.rq
	if be := rq.be; be != nil {
		rq.be = nil
		l.closeBackend(be)
	}
	l.attemptDone(c, false)
	l.backendError(c)
}

// ioFailed: the backend connection broke while the request was on it.
func (l *loop) ioFailed(c *lclient, timeout bool) {
	rq := &c.rq
	be := rq.be
	rq.be = nil
	reused := be != nil && be.reused
	if be != nil {
		l.closeBackend(be)
	}
	if !rq.got && reused && !timeout && !rq.freshRetry {
		// The backend closed an idle keep-alive connection: once more on a
		// new one, which is no failure of the backend.
		if l.dial(c) {
			rq.freshRetry = true
			return
		}
		l.connFailed(c)
		return
	}
	l.attemptDone(c, false)
	l.backendError(c)
	switch {
	case rq.sentHead:
		l.p.observe(rq.r, rq.code, rq.start)
		l.closeClient(c) // the response is cut: only closing says so
	case !rq.got && !timeout && idempotent(rq.method):
		l.attempt(c)
	case timeout:
		l.answer(c, fasthttp.StatusGatewayTimeout)
	default:
		l.answer(c, fasthttp.StatusBadGateway)
	}
}

// badResponse answers 502 for a response the loop cannot read, and closes
// both connections.
func (l *loop) badResponse(c *lclient) {
	l.failAttempt(c)
	c.rq.clientClose = true
	l.answer(c, fasthttp.StatusBadGateway)
}

// answer sends the loop's own error response as the request's answer.
func (l *loop) answer(c *lclient, code int) {
	rq := &c.rq
	msg := fasthttp.StatusMessage(code)
	out := append(c.out[:0], "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(append(append(out, ' '), msg...), "\r\nServer: keel\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)+1), 10)
	if rq.clientClose || l.draining {
		rq.closeClient = true
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(append(append(out, "\r\n\r\n"...), msg...), '\n')
	c.out, c.pend = out, out
	rq.code = code
	rq.done = true
}

// endRequest is called once the response went out in full.
func (l *loop) endRequest(c *lclient) {
	rq := &c.rq
	l.p.observe(rq.r, rq.code, rq.start)
	closeClient := rq.closeClient || l.draining
	c.n = copy(c.buf, c.buf[rq.size:c.n])
	c.scan = 0
	*rq = lrequest{fwd: rq.fwd[:0]}
	if closeClient {
		l.closeClient(c)
		return
	}
	c.deadline = l.now.Add(loopClientIdle)
	if c.n > 0 {
		c.deadline = l.now.Add(loopHeadTimeout)
	}
}

// abort drops a client connection in the middle of its request.
func (l *loop) abort(c *lclient) {
	rq := &c.rq
	if rq.busy {
		if be := rq.be; be != nil {
			rq.be = nil
			l.closeBackend(be)
		}
		if rq.inflight {
			rq.inflight = false
			rq.b.client.inflight.Add(-1) // the client's doing, not the backend's
		}
		if rq.code != 0 {
			l.p.observe(rq.r, rq.code, rq.start)
		}
	}
	l.closeClient(c)
}

// sweep enforces the deadlines and the idle pool's lifetime.
func (l *loop) sweep() {
	if l.stalled && l.lfd >= 0 {
		l.accept()
	}
	for _, c := range l.clients {
		if c.deadline.IsZero() || l.now.Before(c.deadline) {
			continue
		}
		rq := &c.rq
		switch {
		case !rq.busy || rq.done || len(c.pend) > 0:
			l.abort(c)
		case rq.be != nil && rq.be.connecting:
			l.connFailed(c)
			l.step(c)
		case rq.be != nil && !rq.sentHead:
			l.ioFailed(c, true)
			l.step(c)
		default:
			l.abort(c)
		}
	}
	for addr, list := range l.idle {
		keep := list[:0]
		for _, be := range list {
			if l.now.Sub(be.idleSince) > clientIdle {
				l.closeBackend(be)
			} else {
				keep = append(keep, be)
			}
		}
		if len(keep) == 0 {
			delete(l.idle, addr)
		} else {
			l.idle[addr] = keep
		}
	}
}

func (l *loop) pool(be *lbackend) {
	list := l.idle[be.addr]
	if len(list) >= loopMaxIdle {
		l.closeBackend(be)
		return
	}
	be.c, be.reused, be.idleSince = nil, true, l.now
	l.idle[be.addr] = append(list, be)
}

func (l *loop) takeIdle(addr string) *lbackend {
	list := l.idle[addr]
	if len(list) == 0 {
		return nil
	}
	be := list[len(list)-1]
	l.idle[addr] = list[:len(list)-1]
	// Writable it was, and any byte that arrived while it was idle closed
	// it: the edges it had are spent.
	be.writable, be.readable = true, false
	return be
}

func (l *loop) unpool(be *lbackend) {
	list := l.idle[be.addr]
	for i, x := range list {
		if x == be {
			l.idle[be.addr] = append(list[:i], list[i+1:]...)
			return
		}
	}
}

func (l *loop) closeBackend(be *lbackend) {
	if l.backends[be.fd] == be {
		delete(l.backends, be.fd)
		unix.Close(be.fd) // closing removes it from the epoll set
		if l.open[be.addr]--; l.open[be.addr] <= 0 {
			delete(l.open, be.addr)
		}
	}
	be.c = nil
}

func (l *loop) closeClient(c *lclient) {
	if l.clients[c.fd] == c {
		c.closed = true
		delete(l.clients, c.fd)
		unix.Close(c.fd)
		// Nothing uses a closed client's buffers (step stops at closed),
		// so the next client may have them: a new connection per request
		// then costs no 20 KiB read buffer, and no growing of the others.
		if len(l.freeBufs) < loopFreeBufs {
			l.freeBufs = append(l.freeBufs, clientBufs{buf: c.buf, fwd: c.rq.fwd[:0], out: c.out[:0]})
		}
	}
}

// clientBufs are the buffers of a client connection: what it sent (buf),
// the request as forwarded (fwd) and the response head (out).
type clientBufs struct{ buf, fwd, out []byte }

// clientBuffers returns a new client's buffers, a closed client's if there
// are some. Their old bytes are never read: lengths say what is valid.
func (l *loop) clientBuffers() clientBufs {
	if n := len(l.freeBufs); n > 0 {
		b := l.freeBufs[n-1]
		l.freeBufs[n-1] = clientBufs{}
		l.freeBufs = l.freeBufs[:n-1]
		return b
	}
	return clientBufs{buf: make([]byte, loopReadBuffer)}
}

// handoff gives the client connection, and what it sent that the loop
// has not used, to the fasthttp server for good.
func (l *loop) handoff(c *lclient) {
	if l.clients[c.fd] != c {
		return
	}
	c.closed = true
	delete(l.clients, c.fd)
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	pre := c.buf[:c.n] // the closed client's buffers are not reused
	l.handoffs.Add(1)  // before the connection is served, for tests
	if !l.p.adopt(c.fd, func(conn net.Conn) { _ = l.srv.ServeConn(&prefixConn{Conn: conn, pre: pre}) }) {
		l.handoffs.Add(-1)
	}
}

// prefixConn reads the bytes the loop had already read before the
// connection's own.
type prefixConn struct {
	net.Conn
	pre []byte
}

// Read returns the bytes read ahead first.
func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// closeAll closes every socket the loop holds.
func (l *loop) closeAll() {
	for _, c := range l.clients {
		l.abort(c)
	}
	for _, be := range l.backends {
		l.closeBackend(be)
	}
	clear(l.idle)
	l.closeFDs()
}

func (l *loop) closeFDs() {
	if l.lfd >= 0 {
		unix.Close(l.lfd)
		l.lfd = -1
	}
	l.poller.close()
}

// chunkState follows the chunked framing of a response body as it passes
// (RFC 9112 7.1), to find where it ends. Trailer fields pass through.
type chunkState struct {
	state  int
	size   int64
	digits int
}

const (
	chunkSize = iota
	chunkExt
	chunkSizeLF
	chunkData
	chunkDataCR
	chunkDataLF
	chunkTrailer     // at the start of a trailer line
	chunkTrailerLine // inside one
	chunkTrailerLF   // the final CR was seen
)

var errChunk = errors.New("proxy: malformed chunked response")

// feed consumes b and reports how much of it belongs to the body and
// whether the body ended there.
func (s *chunkState) feed(b []byte) (int, bool, error) {
	for i := 0; i < len(b); i++ {
		ch := b[i]
		switch s.state {
		case chunkSize:
			switch {
			case unhex(ch) >= 0:
				if s.digits++; s.digits > 15 {
					return 0, false, errChunk
				}
				s.size = s.size<<4 | int64(unhex(ch))
			case s.digits == 0:
				return 0, false, errChunk
			case ch == ';' || ch == ' ' || ch == '\t':
				s.state = chunkExt
			case ch == '\r':
				s.state = chunkSizeLF
			case ch == '\n':
				s.sizeDone()
			default:
				return 0, false, errChunk
			}
		case chunkExt:
			if ch == '\n' {
				s.sizeDone()
			}
		case chunkSizeLF:
			if ch != '\n' {
				return 0, false, errChunk
			}
			s.sizeDone()
		case chunkData:
			n := min(int64(len(b)-i), s.size)
			s.size -= n
			i += int(n) - 1
			if s.size == 0 {
				s.state = chunkDataCR
			}
		case chunkDataCR:
			switch ch {
			case '\r':
				s.state = chunkDataLF
			case '\n':
				s.state = chunkSize
			default:
				return 0, false, errChunk
			}
		case chunkDataLF:
			if ch != '\n' {
				return 0, false, errChunk
			}
			s.state = chunkSize
		case chunkTrailer:
			switch ch {
			case '\r':
				s.state = chunkTrailerLF
			case '\n':
				return i + 1, true, nil
			default:
				s.state = chunkTrailerLine
			}
		case chunkTrailerLine:
			if ch == '\n' {
				s.state = chunkTrailer
			}
		case chunkTrailerLF:
			if ch != '\n' {
				return 0, false, errChunk
			}
			return i + 1, true, nil
		}
	}
	return len(b), false, nil
}

func (s *chunkState) sizeDone() {
	if s.size == 0 {
		s.state = chunkTrailer
	} else {
		s.state = chunkData
	}
	s.digits = 0
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
