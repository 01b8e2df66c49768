//go:build linux

package proxy

// This file holds what both epoll loops (the HTTP loop and the TCP loop)
// share: the poller they wait on, listener and dial set-up, the address
// cache, splice pipes, fair turns, accepting, and handing a socket to Go.

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// poller is what an event loop waits on: an edge-triggered epoll set, an
// eventfd other goroutines write to wake the loop, and a timerfd that
// ticks for the loop's sweep. Descriptors the loop adds carry a
// generation in the event's Pad (never 0), so an event of a descriptor
// closed earlier in the same batch, whose number was reused, is told
// apart; the poller's own descriptors have Pad 0.
type poller struct {
	epfd, wakefd, tickfd int
	events               []unix.EpollEvent
	gen                  int32
	now                  time.Time // when the last wait returned
	idle                 bool      // the last wait saw no event but the tick
}

// noPoller is a poller with no descriptors yet, safe to close.
var noPoller = poller{epfd: -1, wakefd: -1, tickfd: -1}

// open makes the poller's descriptors, the timerfd ticking every tick.
// On error the caller closes what was made (close).
func (e *poller) open(tick time.Duration) error {
	e.events = make([]unix.EpollEvent, loopEvents)
	var err error
	if e.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create: %w", err)
	}
	if e.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	if e.tickfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		return fmt.Errorf("timerfd: %w", err)
	}
	ts := unix.NsecToTimespec(int64(tick))
	if err := unix.TimerfdSettime(e.tickfd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		return fmt.Errorf("timerfd: %w", err)
	}
	for _, fd := range []int{e.wakefd, e.tickfd} {
		if err := e.add(fd, 0, unix.EPOLLIN); err != nil {
			return err
		}
	}
	e.now = time.Now()
	return nil
}

// add puts fd in the epoll set, edge-triggered, with generation gen.
func (e *poller) add(fd int, gen int32, events uint32) error {
	ev := unix.EpollEvent{Events: events | unix.EPOLLET, Fd: int32(fd), Pad: gen}
	if err := unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// nextGen is a new descriptor generation.
func (e *poller) nextGen() int32 {
	e.gen++
	if e.gen <= 0 {
		e.gen = 1
	}
	return e.gen
}

// wake ends the loop's wait; any goroutine may call it.
func (e *poller) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(e.wakefd, one[:])
}

// wakeOnDone wakes the loop once ctx is done, until the returned func is
// called (which waits for the watching goroutine to end).
func (e *poller) wakeOnDone(ctx context.Context) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		select {
		case <-ctx.Done():
			e.wake()
		case <-done:
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// poll waits for events (only when block is true: else it takes those
// ready now) and returns those of the loop's descriptors (the tick's and
// the wake-up's taken out), and whether the loop was woken.
// A busy loop waits with a raw call, holding its P, for up to loopSpin;
// once a wait passed with no event but the tick (idle), the next one goes
// through the ordinary system call, so that the runtime takes the P back
// and an idle gateway costs nothing: a P held longer draws the
// scheduler's preemption signal every 10 ms. A signal ends a raw wait
// (most likely the scheduler asking for the P: a garbage collection, or
// the loop ran a long while), and the loop then yields.
func (e *poller) poll(block bool) (evs []unix.EpollEvent, woken bool, err error) {
	var n int
	var errno unix.Errno
	switch {
	case !block:
		n, errno = rawEpollWait(e.epfd, e.events, 0)
	case !e.idle:
		n, errno = rawEpollWait(e.epfd, e.events, int(loopSpin/time.Millisecond))
	default:
		var werr error
		if n, werr = unix.EpollWait(e.epfd, e.events, int(loopSweep/time.Millisecond)); werr != nil {
			errno = werr.(unix.Errno)
		}
	}
	switch {
	case errno == unix.EINTR:
		runtime.Gosched()
		n = 0
	case errno != 0:
		return nil, false, fmt.Errorf("epoll_wait: %w", errno)
	}
	e.now = time.Now()
	evs = e.events[:0]
	for _, ev := range e.events[:n] {
		switch {
		case ev.Pad == 0 && int(ev.Fd) == e.tickfd:
			var buf [8]byte
			_, _ = unix.Read(e.tickfd, buf[:])
		case ev.Pad == 0 && int(ev.Fd) == e.wakefd:
			var buf [8]byte
			_, _ = unix.Read(e.wakefd, buf[:])
			woken = true
		default:
			evs = append(evs, ev)
		}
	}
	if errno == 0 && block {
		e.idle = !woken && len(evs) == 0
	}
	return evs, woken, nil
}

// close closes the poller's descriptors.
func (e *poller) close() {
	for _, fd := range []*int{&e.epfd, &e.wakefd, &e.tickfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// takeListener returns a non-blocking duplicate of ln's socket, with
// TCP_NODELAY set so that accepted connections inherit it (no system call
// per connection), and closes ln, even on error.
func takeListener(ln *net.TCPListener) (int, error) {
	defer ln.Close()
	rc, err := ln.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup listener: %w", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TCP_NODELAY: %w", err)
	}
	return fd, nil
}

// addrCache turns "ip:port" backend addresses into socket addresses for
// connect(2), and remembers per route whether all of its backends are IP
// addresses, the only kind a loop dials.
type addrCache struct {
	addrs     map[string]unix.Sockaddr // nil value: not an IP literal
	literals  map[*Route]bool          // of literalOf's routes
	literalOf *Table
}

// literal reports whether every backend of r, a route of table t, is an
// IP address. The answer is kept per route until the table changes: a
// route of 1000 backends would otherwise cost 1000 lookups a request.
func (a *addrCache) literal(t *Table, r *Route) bool {
	if t != a.literalOf || a.literals == nil {
		a.literals = map[*Route]bool{}
		a.literalOf = t
	}
	if ok, known := a.literals[r]; known {
		return ok
	}
	ok := true
	for i := range r.Backends {
		if a.sockaddr(r.Backends[i].Addr) == nil {
			ok = false
			break
		}
	}
	a.literals[r] = ok
	return ok
}

// sockaddr is the socket address of an "ip:port" backend, nil for
// anything else.
func (a *addrCache) sockaddr(addr string) unix.Sockaddr {
	if sa, ok := a.addrs[addr]; ok {
		return sa
	}
	var sa unix.Sockaddr
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		if ip := ap.Addr(); ip.Is4() || ip.Is4In6() {
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.Unmap().As4()}
		} else if ip.Zone() == "" {
			sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
		}
	}
	if a.addrs == nil || len(a.addrs) > 4096 {
		a.addrs = map[string]unix.Sockaddr{}
	}
	a.addrs[addr] = sa
	return sa
}

// connectNonblock starts a non-blocking connect(2) to sa with TCP_NODELAY
// set; connecting is true while it is in progress (the socket turns
// writable when it is done).
func connectNonblock(sa unix.Sockaddr) (fd int, connecting bool, err error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	if fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return -1, false, err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	switch err = unix.Connect(fd, sa); err {
	case nil:
		return fd, false, nil
	case unix.EINPROGRESS:
		return fd, true, nil
	}
	unix.Close(fd)
	return -1, false, err
}

// Splice pipes.
const (
	loopPipeSize  = 1 << 20 // capacity asked for a splice pipe
	loopFreePipes = 16      // empty splice pipes kept
)

// lpipe is a kernel pipe that moves bytes from one socket to another by
// splice(2), without copying them through user space.
type lpipe struct {
	r, w int
	cap  int // what the pipe holds at most
	n    int // bytes in it now
}

// pipePool keeps empty splice pipes (at most loopFreePipes) for the next
// bulk transfers.
type pipePool struct{ free []*lpipe }

// get returns an empty pipe, from the pool or new; nil when the system
// has none to give (the bytes are then copied).
func (pl *pipePool) get(log *slog.Logger) *lpipe {
	if n := len(pl.free); n > 0 {
		pp := pl.free[n-1]
		pl.free[n-1] = nil
		pl.free = pl.free[:n-1]
		return pp
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		log.Debug("loop pipe", "err", err)
		return nil
	}
	pp := &lpipe{r: fds[0], w: fds[1]}
	// Refused (past the user's pipe quota), the default size serves.
	_, _ = unix.FcntlInt(uintptr(pp.r), unix.F_SETPIPE_SZ, loopPipeSize)
	if pp.cap, _ = unix.FcntlInt(uintptr(pp.r), unix.F_GETPIPE_SZ, 0); pp.cap <= 0 {
		pp.cap = 64 << 10
	}
	return pp
}

// put gives pp back: an empty one is kept when keep is true and the pool
// has room, one with bytes that will never be sent is closed (they would
// be the next user's first bytes).
func (pl *pipePool) put(pp *lpipe, keep bool) {
	if keep && pp.n == 0 && len(pl.free) < loopFreePipes {
		pl.free = append(pl.free, pp)
		return
	}
	unix.Close(pp.r)
	unix.Close(pp.w)
}

// close closes the pooled pipes.
func (pl *pipePool) close() {
	for _, pp := range pl.free {
		unix.Close(pp.r)
		unix.Close(pp.w)
	}
	pl.free = nil
}

// adopt moves the socket fd (closed here) into Go's poller and serves it
// with serve on a goroutine of its own, counted in p.conns and tracked
// for shutdown; false when the proxy is shutting down or the socket
// could not be moved.
func (p *Proxy) adopt(fd int, serve func(net.Conn)) bool {
	f := os.NewFile(uintptr(fd), "adopted")
	conn, err := net.FileConn(f) // a duplicate
	f.Close()
	if err != nil {
		p.log.Debug("loop handoff", "err", err)
		return false
	}
	if !p.enter() {
		conn.Close() // shutting down
		return false
	}
	p.track(true, conn)
	go func() {
		defer p.conns.Done()
		defer p.track(false, conn)
		serve(conn)
	}()
	return true
}

// takeTurns gives each of the connections in *later, which had their fair
// share, their next turn (run), once: the ones that queue again go on a
// fresh list, the other slice (*spare), and the two swap.
func takeTurns[T any](later, spare *[]T, run func(T)) {
	if len(*later) == 0 {
		return
	}
	turn := *later
	*later = (*spare)[:0]
	var none T
	for i, x := range turn {
		run(x)
		turn[i] = none
	}
	*spare = turn[:0]
}

// acceptAll accepts the connections waiting on the listener lfd and
// hands each, with the peer's address, to serve. A failed accept (out of
// descriptors, say) leaves the rest in the backlog, where they bring no
// new edge: it sets *stalled, for the loop's sweep to call again, and is
// counted, and logged once a stall (listen names the listener).
func (p *Proxy) acceptAll(lfd int, stalled *bool, listen string, serve func(fd int, ip []byte)) {
	for {
		fd, ip, err := rawAccept(lfd)
		switch {
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		case err == unix.EAGAIN:
			*stalled = false
			return
		case err != 0:
			p.metrics.acceptErrors.Inc()
			if !*stalled {
				p.log.Warn("accept failed; retrying", "listen", listen, "err", err)
			}
			*stalled = true
			return
		}
		*stalled = false
		serve(fd, ip)
	}
}
