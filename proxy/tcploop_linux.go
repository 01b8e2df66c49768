//go:build linux

package proxy

import (
	"errors"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The TCP loop serves every TCP service port from one edge-triggered
// epoll loop, as the HTTP loop serves the plain HTTP listener. A
// connection costs a pair of sockets and a struct: no goroutine, no
// timer, no Go poller registration. Bytes are read into the loop's one
// buffer and written at once; only what the receiver cannot take yet is
// kept, in a buffer of the pair's own until it drains. A direction that
// fills the whole read buffer is bulk, and moves through a kernel pipe by
// splice(2) from then on. Each side's end of stream is passed on as a
// half-close. Routes whose backends are not all IP addresses (static
// routes naming hosts) go to the goroutine path, serveTCP.

// DefaultTCPEngine is the engine of a Config that names none: the loop
// where it exists.
const DefaultTCPEngine = "loop"

// tcpLoopBuffer is the TCP loop's read buffer; a read that fills it makes
// its direction bulk.
const tcpLoopBuffer = 64 << 10

// tcpLoopSpare is how many emptied pending buffers the loop keeps.
const tcpLoopSpare = 64

// tcpFairShare is how many bytes a pair moves in one turn; then the other
// pairs ready have theirs. (A variable, so that tests can make turns
// short.)
var tcpFairShare = 4 << 20

// tloop is the TCP service port loop. Only its goroutine touches its
// fields but mu and cmds.
type tloop struct {
	poller
	addrCache
	p      *Proxy
	lns    map[int]*tlisten // by fd
	ends   map[int]*tend    // by fd
	pairs  map[*tpair]struct{}
	buf    []byte
	spare  [][]byte // emptied pending buffers
	pipes  pipePool
	later  []*tpair // pairs that had their fair share and have more to move
	behind []*tpair // later's other slice
	turn   int      // bytes moved in the current pair's turn
	yields int      // turns ended by the fair share, for tests
	swept  time.Time
	every  time.Duration // between sweeps
	idle   time.Duration // the idle timeout (negative: none)
	drain  bool
	drainT time.Time

	mu     sync.Mutex
	cmds   []tcmd // guarded by mu
	exited bool   // guarded by mu: run returned, commands are done by their callers
}

// tcmd is a request to the loop from another goroutine.
type tcmd struct {
	add   *tlisten // serve this listener
	del   *tlisten // close this one (if the loop still has it)
	drain bool     // stop accepting, end when the connections have
	do    func()   // run this on the loop (tests look inside with it)
	done  chan struct{}
}

// tlisten is a service port listener of the loop.
type tlisten struct {
	fd      int
	gen     int32
	key     string
	stalled bool // an accept failed (out of descriptors): the sweep tries again
}

// tend is one socket of a pair: the client's or the backend's.
type tend struct {
	fd       int
	gen      int32
	pr       *tpair
	readable bool
	writable bool
	hup      bool // the peer closed: a short read is no sign of a drained socket
}

// tdir is one direction of a pair.
type tdir struct {
	from, to *tend
	pend     []byte // bytes read and not written yet (in held)
	held     []byte // pend's buffer while it has bytes
	pipe     *lpipe // bulk: the bytes move through it
	bulk     bool
	bytes    int64 // moved
	counted  int64 // of bytes, in the metric already
	eof      bool  // from has sent all it will
	shut     bool  // to was told (or cannot be written any more)
}

// tpair is a client connection of a service port and its backend's.
type tpair struct {
	cl, be     tend
	up, down   tdir // client to backend, backend to client
	key        string
	r          *Route
	series     l4Key
	m          *l4Counters
	tries      attempts
	b          *Backend // the backend connected or connecting (nil: none yet)
	connecting bool
	inflight   bool // b.client.inflight counts the pair
	limited    bool // the pair holds a slot of r.MaxConns
	deadline   time.Time
	last       time.Time // a byte last moved, either way
	queued     bool      // in tloop.later
	closed     bool
}

// newTLoop makes the TCP loop of p; run serves it.
func newTLoop(p *Proxy) (*tloop, error) {
	t := &tloop{poller: noPoller, p: p, lns: map[int]*tlisten{}, ends: map[int]*tend{}, pairs: map[*tpair]struct{}{},
		buf: make([]byte, tcpLoopBuffer), idle: p.idleTimeout()}
	t.every = loopSweep
	if t.idle > 0 && t.idle/4 < t.every {
		t.every = max(t.idle/4, 10*time.Millisecond)
	}
	if err := t.open(t.every); err != nil {
		t.poller.close()
		return nil, err
	}
	return t, nil
}

// listen hands ln's socket to the loop (ln is closed) and returns the
// loop's listener, for unlisten.
func (t *tloop) listen(key string, ln *net.TCPListener) (*tlisten, error) {
	fd, err := takeListener(ln)
	if err != nil {
		return nil, err
	}
	tl := &tlisten{fd: fd, key: key}
	if !t.command(tcmd{add: tl}) {
		return nil, errTCPLoopGone
	}
	return tl, nil
}

// errTCPLoopGone is a listener given to a TCP loop that stopped (on an
// epoll error) or was stopped.
var errTCPLoopGone = errors.New("proxy: the TCP loop has stopped")

// unlisten closes tl. When it returns the port is free: a listener on it
// may open again at once. (A listener the loop let go of already, its
// descriptor maybe another's by now, is left alone.)
func (t *tloop) unlisten(tl *tlisten) { t.command(tcmd{del: tl}) }

// stop makes the loop stop accepting and end once its connections have
// (or drainTimeout passed).
func (t *tloop) stop() { t.command(tcmd{drain: true}) }

// do runs f on the loop's goroutine and waits until it has.
func (t *tloop) do(f func()) { t.command(tcmd{do: f}) }

// command has the loop carry out c and waits until it has; false when
// the loop had returned (a listener to add is then closed, as the loop's
// own were).
func (t *tloop) command(c tcmd) bool {
	c.done = make(chan struct{})
	t.mu.Lock()
	if t.exited {
		t.mu.Unlock()
		if c.add != nil {
			unix.Close(c.add.fd)
		}
		return false
	}
	t.cmds = append(t.cmds, c)
	t.mu.Unlock()
	t.wake()
	<-c.done
	return true
}

// commands carries out the commands waiting.
func (t *tloop) commands() {
	t.mu.Lock()
	cmds := t.cmds
	t.cmds = nil
	t.mu.Unlock()
	for _, c := range cmds {
		switch {
		case c.add != nil && t.drain:
			unix.Close(c.add.fd)
		case c.add != nil:
			c.add.gen = t.nextGen()
			if err := t.add(c.add.fd, c.add.gen, unix.EPOLLIN); err != nil {
				t.p.log.Error("service port not served", "listen", c.add.key, "err", err)
				unix.Close(c.add.fd)
				break
			}
			t.lns[c.add.fd] = c.add // connections already queued make the first edge
		case c.del != nil:
			if t.lns[c.del.fd] == c.del {
				delete(t.lns, c.del.fd)
				unix.Close(c.del.fd)
			}
		case c.do != nil:
			c.do()
		case c.drain && !t.drain:
			t.drain, t.drainT = true, t.now.Add(drainTimeout)
			for fd := range t.lns {
				unix.Close(fd)
			}
			clear(t.lns)
		}
		close(c.done)
	}
}

// run serves until stopped and drained; it closes every socket it holds
// when it returns.
func (t *tloop) run() {
	addLoopProc(1)
	defer addLoopProc(-1)
	defer func() {
		t.closeAll()
		t.mu.Lock()
		t.exited = true
		cmds := t.cmds
		t.cmds = nil
		t.mu.Unlock()
		for _, c := range cmds {
			if c.add != nil {
				unix.Close(c.add.fd)
			}
			close(c.done)
		}
	}()
	t.swept = t.now
	for {
		evs, woken, err := t.poll(len(t.later) == 0)
		if err != nil {
			t.p.log.Error("TCP service ports stop", "err", err)
			return
		}
		if woken {
			t.commands()
		}
		for _, ev := range evs {
			t.event(ev)
		}
		t.resume()
		if t.now.Sub(t.swept) >= t.every {
			t.swept = t.now
			t.sweep()
		}
		if t.drain && (len(t.pairs) == 0 || t.now.After(t.drainT)) {
			return
		}
	}
}

func (t *tloop) event(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if ln := t.lns[fd]; ln != nil && ln.gen == ev.Pad {
		t.accept(ln)
		return
	}
	e := t.ends[fd]
	if e == nil || e.gen != ev.Pad {
		return // closed earlier in this batch
	}
	pr := e.pr
	e.readable = e.readable || ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	e.writable = e.writable || ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
	e.hup = e.hup || ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	if e == &pr.be && pr.connecting {
		if !e.writable {
			return
		}
		// Connected, or refused: an error or hang-up says which, by
		// SO_ERROR (asked only then: a connection that succeeds costs no
		// system call to tell).
		if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			if soerr, err := unix.GetsockoptInt(e.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
				t.connFailed(pr)
				return
			}
		}
		t.connected(pr)
		return
	}
	t.pump(pr)
}

func (t *tloop) accept(ln *tlisten) {
	t.p.acceptAll(ln.fd, &ln.stalled, ln.key, func(fd int, ip []byte) { t.start(ln.key, fd, ip) })
}

// start forwards the client connection fd, from ip, of the service port key.
func (t *tloop) start(key string, fd int, ip []byte) {
	table := t.p.table.Load()
	r := table.services[key]
	if r == nil || len(r.Backends) == 0 {
		unix.Close(fd)
		return
	}
	if !t.literal(table, r) {
		t.handOff(key, fd)
		return
	}
	if !t.p.admitTCP(r, key) {
		unix.Close(fd)
		return
	}
	pr := &tpair{key: key, r: r, series: l4Key{protoTCP, r.App, key}, last: t.now, limited: r.MaxConns > 0}
	pr.m = t.p.metrics.l4.acquire(pr.series)
	pr.m.opened.Inc()
	pr.m.active.Inc()
	pr.cl = tend{fd: fd, gen: t.nextGen(), pr: pr}
	pr.be = tend{fd: -1, pr: pr}
	pr.up = tdir{from: &pr.cl, to: &pr.be}
	pr.down = tdir{from: &pr.be, to: &pr.cl}
	t.pairs[pr] = struct{}{}
	if err := t.add(fd, pr.cl.gen, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP); err != nil {
		t.finish(pr)
		return
	}
	t.ends[fd] = &pr.cl
	t.keepAlive(fd)
	pr.tries = attempts{r: r, first: pick(r, net.IP(ip))}
	t.connect(pr)
}

// keepAlive turns TCP keep-alive on, as Go's default, when no idle
// timeout closes dead peers' connections (see Proxy.tcpKeepAlive).
func (t *tloop) keepAlive(fd int) {
	if t.p.tcpKeepAlive() < 0 {
		return
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
}

// handOff serves the client connection fd on the goroutine path.
func (t *tloop) handOff(key string, fd int) {
	t.p.adopt(fd, func(c net.Conn) { t.p.serveTCP(key, c) })
}

// connect dials the pair's next backend to try, or ends the pair when
// none is left.
func (t *tloop) connect(pr *tpair) {
	for {
		i, ok := pr.tries.next(t.now.UnixNano())
		if !ok {
			t.finish(pr)
			return
		}
		b := &pr.r.Backends[i]
		pr.b = b
		fd, connecting, err := connectNonblock(t.sockaddr(b.Addr))
		if err != nil {
			t.backendFailed(pr)
			continue
		}
		pr.be = tend{fd: fd, gen: t.nextGen(), pr: pr}
		if err := t.add(fd, pr.be.gen, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP); err != nil {
			unix.Close(fd)
			pr.be.fd = -1
			continue
		}
		t.ends[fd] = &pr.be
		t.keepAlive(fd)
		if connecting {
			pr.connecting, pr.deadline = true, t.now.Add(connectTimeout)
			return
		}
		pr.be.writable = true
		t.connected(pr)
		return
	}
}

// connected starts moving the pair's bytes.
func (t *tloop) connected(pr *tpair) {
	pr.connecting = false
	pr.b.client.health.success()
	pr.b.client.inflight.Add(1)
	pr.inflight = true
	pr.last = t.now
	t.pump(pr)
}

// connFailed closes the backend socket of a connect that failed and tries
// the next backend.
func (t *tloop) connFailed(pr *tpair) {
	pr.connecting = false
	t.closeEnd(&pr.be)
	t.backendFailed(pr)
	t.connect(pr)
}

// backendFailed counts a failed connect to pr.b.
func (t *tloop) backendFailed(pr *tpair) {
	t.p.fail(pr.b)
	t.p.metrics.backendErrors.WithLabelValues(pr.r.App).Inc()
}

// resume gives the pairs that had their fair share their next turn.
func (t *tloop) resume() {
	takeTurns(&t.later, &t.behind, func(pr *tpair) {
		pr.queued = false
		t.pump(pr)
	})
}

// pump moves what both directions of pr can move now, up to the fair
// share: past it the pair waits for the other pairs ready, with its
// readiness as it was (no edge is lost), so that one bulk transfer does
// not hold up every other connection.
func (t *tloop) pump(pr *tpair) {
	if pr.connecting || pr.closed {
		return
	}
	t.turn = 0
	t.move(pr, &pr.up)
	t.move(pr, &pr.down)
	if pr.up.shut && pr.down.shut {
		t.finish(pr)
		return
	}
	if t.turn >= tcpFairShare && !pr.queued {
		pr.queued = true
		t.later = append(t.later, pr)
		t.yields++
	}
}

// move moves d's bytes until one side has to wait for an event, or the
// pair's turn is over.
func (t *tloop) move(pr *tpair, d *tdir) {
	for !d.shut && t.turn < tcpFairShare {
		if len(d.pend) > 0 || (d.pipe != nil && d.pipe.n > 0) {
			if !d.to.writable {
				return
			}
			if !t.flush(pr, d) {
				return
			}
			continue
		}
		if d.eof {
			t.shut(pr, d)
			return
		}
		if !d.from.readable {
			return
		}
		if d.bulk && d.pipe == nil {
			d.pipe = t.pipes.get(t.p.log)
			if d.pipe == nil {
				d.bulk = false // no pipe to be had: copy
			}
		}
		var n int
		var err error
		if d.pipe != nil {
			// Into the pipe only when it is empty (as the HTTP loop's
			// splice): from an empty pipe, EAGAIN means the socket is
			// drained, and a short splice is no sign of it.
			var errno unix.Errno
			if n, errno = rawSplice(d.from.fd, d.pipe.w, d.pipe.cap); errno != 0 {
				err = errno
			}
		} else {
			n, err = rawRead(d.from.fd, t.buf)
		}
		switch {
		case err == unix.EAGAIN:
			d.from.readable = false
			return
		case err != nil || n == 0:
			d.eof = true // an error ends the direction as an end of stream would
			continue
		}
		d.bytes += int64(n)
		pr.last = t.now
		if d.pipe != nil {
			d.pipe.n = n
			continue
		}
		if n < len(t.buf) && !d.from.hup {
			d.from.readable = false // drained: the next bytes bring an edge
		}
		if n == len(t.buf) {
			d.bulk = true
		}
		t.forward(pr, d, t.buf[:n])
	}
}

// forward writes b, just read, to d.to, and keeps what it does not take.
func (t *tloop) forward(pr *tpair, d *tdir, b []byte) {
	if d.to.writable {
		w, err := rawWrite(d.to.fd, b)
		switch {
		case err == unix.EAGAIN:
			d.to.writable = false
		case err != nil:
			t.broken(pr, d)
			return
		default:
			if w < len(b) {
				d.to.writable = false // the socket buffer is full: wait for the edge
			}
			t.turn += w
			b = b[w:]
		}
	}
	if len(b) == 0 {
		return
	}
	if d.held == nil {
		if n := len(t.spare); n > 0 {
			d.held, t.spare = t.spare[n-1], t.spare[:n-1]
		} else {
			d.held = make([]byte, tcpLoopBuffer)
		}
	}
	d.pend = d.held[:copy(d.held, b)]
}

// flush writes d's pending bytes (or pipe) to d.to; false means wait.
func (t *tloop) flush(pr *tpair, d *tdir) bool {
	if d.pipe != nil && d.pipe.n > 0 {
		n, errno := rawSplice(d.pipe.r, d.to.fd, d.pipe.n)
		switch {
		case errno == unix.EAGAIN:
			d.to.writable = false
			return false
		case errno != 0:
			t.broken(pr, d)
			return false
		}
		// Short is no sign of a full socket: a splice may stop at the end
		// of a pipe buffer. Only EAGAIN says full.
		d.pipe.n -= n
		t.turn += n
		pr.last = t.now
		return true
	}
	w, err := rawWrite(d.to.fd, d.pend)
	switch {
	case err == unix.EAGAIN:
		d.to.writable = false
		return false
	case err != nil:
		t.broken(pr, d)
		return false
	}
	pr.last = t.now
	t.turn += w
	if d.pend = d.pend[w:]; len(d.pend) > 0 {
		d.to.writable = false
		return false
	}
	t.release(d)
	return true
}

// release gives d's pending buffer back once it is empty.
func (t *tloop) release(d *tdir) {
	if d.held != nil && len(t.spare) < tcpLoopSpare {
		t.spare = append(t.spare, d.held)
	}
	d.held, d.pend = nil, nil
}

// broken ends d, whose receiver cannot be written any more: what it
// holds is dropped, and the sender is read no further.
func (t *tloop) broken(pr *tpair, d *tdir) {
	d.eof, d.shut = true, true
	t.release(d)
}

// shut passes d's end of stream on as a half-close, or ends the pair
// when the other direction is over too (the close says it then).
func (t *tloop) shut(pr *tpair, d *tdir) {
	d.shut = true
	other := &pr.up
	if d == &pr.up {
		other = &pr.down
	}
	if !other.shut {
		_ = unix.Shutdown(d.to.fd, unix.SHUT_WR)
	}
}

// sweep enforces connect deadlines and the idle timeout, and brings the
// byte counters up to date, so that a long connection's bytes show as
// they move.
func (t *tloop) sweep() {
	for _, ln := range t.lns {
		if ln.stalled {
			t.accept(ln)
		}
	}
	for pr := range t.pairs {
		pr.count()
		switch {
		case pr.connecting && t.now.After(pr.deadline):
			t.connFailed(pr)
		case !pr.connecting && t.idle > 0 && t.now.Sub(pr.last) >= t.idle:
			t.p.log.Debug("closing idle service port connection", "listen", pr.key, "app", pr.r.App, "idle", t.now.Sub(pr.last))
			t.finish(pr)
		}
	}
}

// finish closes both sockets of pr and lets go of what it holds.
func (t *tloop) finish(pr *tpair) {
	if pr.closed {
		return
	}
	pr.closed = true
	t.closeEnd(&pr.cl)
	t.closeEnd(&pr.be)
	for _, d := range []*tdir{&pr.up, &pr.down} {
		t.release(d)
		if d.pipe != nil {
			t.pipes.put(d.pipe, !t.drain)
			d.pipe = nil
		}
	}
	if pr.inflight {
		pr.b.client.inflight.Add(-1)
	}
	if pr.limited {
		pr.r.active.Add(-1)
	}
	pr.m.active.Dec()
	pr.count()
	t.p.metrics.l4.release(pr.series)
	delete(t.pairs, pr)
}

// count adds the bytes moved since the last count to the pair's series.
func (pr *tpair) count() {
	if d := pr.up.bytes - pr.up.counted; d > 0 {
		pr.m.bytesIn.Add(float64(d))
		pr.up.counted = pr.up.bytes
	}
	if d := pr.down.bytes - pr.down.counted; d > 0 {
		pr.m.bytesOut.Add(float64(d))
		pr.down.counted = pr.down.bytes
	}
}

// closeEnd closes one socket of a pair (closing takes it out of the epoll
// set).
func (t *tloop) closeEnd(e *tend) {
	if e.fd < 0 {
		return
	}
	if t.ends[e.fd] == e {
		delete(t.ends, e.fd)
	}
	unix.Close(e.fd)
	*e = tend{fd: -1, pr: e.pr}
}

// closeAll closes every socket the loop holds.
func (t *tloop) closeAll() {
	for pr := range t.pairs {
		t.finish(pr)
	}
	for fd := range t.lns {
		unix.Close(fd)
	}
	clear(t.lns)
	t.pipes.close()
	t.poller.close()
}
