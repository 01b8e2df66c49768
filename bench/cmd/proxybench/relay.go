package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"net"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// relayRequestBuffer holds a request head (and streams its body).
	relayRequestBuffer = 16 << 10
	// relayResponseBuffer streams responses: 16 reads and 16 writes per
	// MiB of body.
	relayResponseBuffer = 64 << 10
	// relayMaxPending bounds pipelined requests awaiting their responses
	// (one bit each of pair.heads).
	relayMaxPending = 64
	// relayEvents is how many epoll events one wait returns at most.
	relayEvents = 256
	// relayPipeSize is the capacity asked for a pair's kernel pipe, so
	// what one splice moves at most.
	relayPipeSize = 1 << 20
	// relayWaitMillis bounds one epoll wait, see epollWait.
	relayWaitMillis = 100
)

// Why the relay closes a connection pair on its own.
var (
	errHeadTooLarge     = errors.New("relay: message head larger than the buffer")
	errBadHead          = errors.New("relay: malformed message head")
	errTransferEncoding = errors.New("relay: transfer-encoding is not supported")
	errNoLength         = errors.New("relay: response without content-length is not supported")
	errUpgrade          = errors.New("relay: protocol upgrades are not supported")
	errUnsolicited      = errors.New("relay: response without a request")
)

// relayOptions configure the relay child.
type relayOptions struct {
	listen   string   // address to listen on, host:port
	backends []string // backend addresses, host:port; client connections take them in turn
}

// runRelay serves the floor relay (see relay: a bare relay, not a proxy)
// on o.listen until ctx is done.
func runRelay(ctx context.Context, o relayOptions) error {
	r, err := newRelay(o.listen, o.backends)
	if err != nil {
		return err
	}
	return r.run(ctx)
}

// relay is the "floor" peer of the keep-alive cases, and its state, owned
// by the goroutine in run. It is not a proxy: it has no routes, no Host
// lookup, no header rewriting, no timeouts, no health checks, no metrics
// and no logs per request. It pairs every client connection with one
// backend connection and copies HTTP/1.1 messages between them unchanged,
// parsing only what it needs to find where each message ends. It exists to
// measure the least CPU a user-space relay spends per request on this
// machine: the four socket syscalls per request (read and write on each
// side) and the epoll wake-up, with almost nothing in user space. A
// proxy's CPU per request over the relay's is what its features cost; the
// relay's over HAProxy's shows how close HAProxy already is to that floor.
//
// How it keeps the syscalls to that floor: one goroutine on a locked OS
// thread runs one edge-triggered epoll set; sockets are non-blocking and
// registered once for both directions; a read shorter than the free buffer
// space means the socket is drained, so the relay waits for the next edge
// instead of reading again to see EAGAIN; a write shorter than asked means
// the send buffer is full, likewise. Buffers belong to a connection pair
// and pairs are reused, so a request allocates nothing.
type relay struct {
	addr     string // the address it listens on
	lfd      int    // listening socket
	epfd     int    // the epoll set
	wakefd   int    // eventfd written when run's context is done
	backends []unix.Sockaddr
	next     int     // backend the next client connection gets
	gen      int32   // last registration number handed out
	byFD     []*pair // the pair each open socket belongs to, by fd
	free     *pair   // closed pairs, kept for their buffers
	events   []unix.EpollEvent
}

// pair is a client connection and its backend connection.
type pair struct {
	client, backend endpoint
	up, down        pipe // client to backend (requests), backend to client (responses)
	connected       bool // the backend connect has completed
	// pending counts requests passed to the backend whose final response
	// has not been passed to the client; bit i of heads is set when the
	// i-th of them (oldest first) is a HEAD request, whose response has
	// no body whatever its Content-Length says.
	pending int
	heads   uint64
	closed  bool
	next    *pair // free list link
}

// endpoint is one socket of a pair and what epoll last told of it.
type endpoint struct {
	fd int
	// gen is the registration number epoll events carry, so an event
	// queued for a socket closed meanwhile is not taken for a new socket
	// that got the same fd number.
	gen      int32
	readable bool // data or EOF may be waiting: read until a short read
	writable bool // the send buffer had room at the last write
	// peerShut is set once epoll reported the peer's FIN (or an error):
	// then a short read does not mean drained, since the EOF is still to
	// be read and no further edge will announce it.
	peerShut bool
}

// pipe carries one direction of a pair through its buffer: buf[:start]
// is written out, buf[start:fwd] parsed and ready to write, buf[fwd:end]
// read but not yet parsed (part of a message head). A long body bypasses
// the buffer, see kr.
type pipe struct {
	buf             []byte
	start, fwd, end int
	inBody          bool
	body            int64 // bytes of the current body not yet parsed
	eof             bool  // the source has sent its FIN
	shut            bool  // the destination has been shut down for writing
	// A body longer than the buffer goes through a kernel pipe instead,
	// spliced from socket to pipe to socket without a copy into user
	// space, as HAProxy and Go's io.Copy between TCP connections (so
	// Keel) move bodies. kr and kw are the pipe's ends (-1 until first
	// needed; the pipe stays with the pair for reuse); inPipe counts the
	// bytes in it.
	kr, kw int
	kcap   int // the pipe's capacity
	inPipe int
}

// newRelay opens the relay's listening socket and epoll set.
func newRelay(listen string, backends []string) (_ *relay, err error) {
	if len(backends) == 0 {
		return nil, errors.New("relay: no backends")
	}
	r := &relay{lfd: -1, epfd: -1, wakefd: -1, events: make([]unix.EpollEvent, relayEvents)}
	defer func() {
		if err != nil {
			r.closeFDs()
		}
	}()
	for _, b := range backends {
		sa, _, err := sockaddrOf(b)
		if err != nil {
			return nil, err
		}
		r.backends = append(r.backends, sa)
	}
	sa, family, err := sockaddrOf(listen)
	if err != nil {
		return nil, err
	}
	if r.lfd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("relay: socket: %w", err)
	}
	if err = unix.SetsockoptInt(r.lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("relay: SO_REUSEADDR: %w", err)
	}
	if err = unix.Bind(r.lfd, sa); err != nil {
		return nil, fmt.Errorf("relay: bind %s: %w", listen, err)
	}
	if err = unix.Listen(r.lfd, 4096); err != nil {
		return nil, fmt.Errorf("relay: listen %s: %w", listen, err)
	}
	bound, err := unix.Getsockname(r.lfd)
	if err != nil {
		return nil, fmt.Errorf("relay: getsockname: %w", err)
	}
	r.addr = sockaddrString(bound)
	if r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("relay: epoll_create1: %w", err)
	}
	if r.wakefd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("relay: eventfd: %w", err)
	}
	// The listener and the eventfd carry generation 0, which no pair
	// socket gets.
	for _, fd := range []int{r.lfd, r.wakefd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		if err = unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("relay: epoll_ctl: %w", err)
		}
	}
	return r, nil
}

// run relays until ctx is done, then closes every socket it holds. It
// returns an error only when epoll itself fails.
func (r *relay) run(ctx context.Context) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// A parked goroutine turns ctx into an epoll event, so that the loop
	// never wakes up just to look at ctx.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			unix.Write(r.wakefd, one[:])
		case <-done:
		}
	})
	defer func() {
		close(done)
		wg.Wait()
		r.closeAll()
	}()
	for {
		n, err := epollWait(r.epfd, r.events, relayWaitMillis)
		if err != 0 && err != unix.EINTR {
			return fmt.Errorf("relay: epoll_wait: %w", err)
		}
		if n <= 0 {
			// Interrupted (most likely by the scheduler's preemption
			// signal) or idle: let the other goroutines have the P.
			runtime.Gosched()
			continue
		}
		for _, ev := range r.events[:n] {
			switch {
			case ev.Pad == 0 && int(ev.Fd) == r.wakefd:
				return nil
			case ev.Pad == 0 && int(ev.Fd) == r.lfd:
				r.accept()
			default:
				r.event(ev)
			}
		}
	}
}

// accept takes every pending connection (the listener is edge-triggered)
// and pairs each with a new backend connection.
func (r *relay) accept() {
	for {
		fd, _, err := unix.Accept4(r.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == unix.EINTR || err == unix.ECONNABORTED:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			log.Printf("proxybench relay: accept: %v", err)
			return
		}
		r.open(fd)
	}
}

// open pairs the accepted client socket cfd with a backend connection.
func (r *relay) open(cfd int) {
	sa := r.backends[r.next]
	r.next = (r.next + 1) % len(r.backends)
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	bfd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Printf("proxybench relay: backend socket: %v", err)
		unix.Close(cfd)
		return
	}
	// Nagle would hold a message's last segment back for an ACK; Go's
	// net package (so Keel) and HAProxy disable it too.
	unix.SetsockoptInt(cfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	unix.SetsockoptInt(bfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	err = unix.Connect(bfd, sa)
	if err != nil && err != unix.EINPROGRESS {
		log.Printf("proxybench relay: connect %s: %v", sockaddrString(sa), err)
		unix.Close(cfd)
		unix.Close(bfd)
		return
	}
	p := r.get()
	p.connected = err == nil
	p.client = endpoint{fd: cfd, gen: r.nextGen()}
	p.backend = endpoint{fd: bfd, gen: r.nextGen()}
	for _, e := range []*endpoint{&p.client, &p.backend} {
		for e.fd >= len(r.byFD) {
			r.byFD = append(r.byFD, nil)
		}
		r.byFD[e.fd] = p
		// Registered once for both directions: what is ready now is
		// reported at once, later changes as edges.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
			Fd: int32(e.fd), Pad: e.gen}
		if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			log.Printf("proxybench relay: epoll_ctl: %v", err)
			r.closePair(p)
			return
		}
	}
}

func (r *relay) nextGen() int32 {
	r.gen++
	if r.gen <= 0 {
		r.gen = 1
	}
	return r.gen
}

// event records what epoll says of one socket and moves its pair's data.
func (r *relay) event(ev unix.EpollEvent) {
	fd := int(ev.Fd)
	if fd < 0 || fd >= len(r.byFD) || r.byFD[fd] == nil {
		return // closed earlier in this batch
	}
	p := r.byFD[fd]
	var e *endpoint
	switch {
	case p.client.fd == fd && p.client.gen == ev.Pad:
		e = &p.client
	case p.backend.fd == fd && p.backend.gen == ev.Pad:
		e = &p.backend
	default:
		return // for an earlier socket with this fd number
	}
	// A hang-up or error is discovered by the next read or write.
	const gone = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	if ev.Events&(unix.EPOLLIN|gone) != 0 {
		e.readable = true
	}
	if ev.Events&gone != 0 {
		e.peerShut = true
	}
	if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		e.writable = true
	}
	if e == &p.backend && !p.connected {
		if !e.writable {
			return
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		if err != nil {
			log.Printf("proxybench relay: connect to backend: %v", err)
			r.closePair(p)
			return
		}
		p.connected = true
	}
	r.drive(p)
}

// drive moves p's data both ways until neither direction can progress
// without a new event.
func (r *relay) drive(p *pair) {
	for !p.closed {
		up := r.flow(p, &p.up, &p.client, &p.backend, true)
		if p.closed {
			return
		}
		down := r.flow(p, &p.down, &p.backend, &p.client, false)
		if !up && !down {
			return
		}
	}
}

// flow makes one pass over one direction of p: write out what is ready,
// parse what was read, read more (or splice a long body through); it
// reports whether anything changed.
// request says whether this is the client-to-backend direction.
func (r *relay) flow(p *pair, pp *pipe, src, dst *endpoint, request bool) (progress bool) {
	if pp.start < pp.fwd && dst.writable && (p.connected || !request) {
		want := pp.fwd - pp.start
		n, err := rawIO(unix.SYS_WRITE, dst.fd, pp.buf[pp.start:pp.fwd])
		switch {
		case err == unix.EAGAIN:
			dst.writable = false
		case err == unix.EINTR:
			progress = true
		case err != 0: // the peer is gone (EPIPE, ECONNRESET)
			r.closePair(p)
			return false
		default:
			pp.start += n
			progress = n > 0
			if n < want {
				dst.writable = false // full: wait for EPOLLOUT
			}
		}
		if pp.start == pp.end {
			pp.start, pp.fwd, pp.end = 0, 0, 0
		}
	}
	if pp.fwd < pp.end {
		moved, err := r.parse(p, pp, request)
		if err != nil {
			log.Printf("proxybench %v", err)
			r.closePair(p)
			return false
		}
		progress = progress || moved
	}
	if pp.inPipe > 0 || (pp.inBody && pp.start == pp.end && pp.body >= int64(len(pp.buf))) {
		moved, ok := r.splice(p, pp, src, dst, request)
		if !ok {
			return false
		}
		progress = progress || moved
	} else if src.readable && !pp.eof {
		if pp.end == len(pp.buf) && pp.start > 0 {
			n := copy(pp.buf, pp.buf[pp.start:pp.end])
			pp.fwd -= pp.start
			pp.start, pp.end = 0, n
		}
		if free := len(pp.buf) - pp.end; free > 0 {
			n, err := rawIO(unix.SYS_READ, src.fd, pp.buf[pp.end:])
			switch {
			case err == unix.EAGAIN:
				src.readable = false
			case err == unix.EINTR:
				progress = true
			case err != 0: // ECONNRESET: the peer is gone
				r.closePair(p)
				return false
			case n == 0:
				pp.eof, src.readable = true, false
				progress = true
			default:
				pp.end += n
				progress = true
				if n < free && !src.peerShut {
					src.readable = false // drained: wait for the next edge
				}
			}
		}
	}
	if pp.eof && pp.start == pp.fwd && pp.inPipe == 0 {
		if request && p.pending == 0 && p.down.start == p.down.fwd && p.down.inPipe == 0 {
			// The client has left and has every response it asked for:
			// the usual end of a keep-alive connection (wrk stopping).
			r.closePair(p)
			return false
		}
		if !pp.shut {
			// Pass the half-close on and let the other way finish.
			unix.Shutdown(dst.fd, unix.SHUT_WR)
			pp.shut, progress = true, true
			if p.up.shut && p.down.shut {
				r.closePair(p)
				return false
			}
		}
	}
	return progress
}

// splice moves the body of pp's current message from src through the
// kernel pipe to dst, a pipe at a time: into the pipe only when it is
// empty (so EAGAIN means the socket is drained, not the pipe full), then
// out. A short splice into the pipe may mean that the pipe ran out of
// pages rather than the socket of data, so only EAGAIN ends reading here:
// one extra call per wake-up, on bodies of 64 KiB or more. It returns
// false when it closed the pair.
func (r *relay) splice(p *pair, pp *pipe, src, dst *endpoint, request bool) (progress, ok bool) {
	if pp.kr < 0 {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			log.Printf("proxybench relay: pipe: %v", err)
			r.closePair(p)
			return false, false
		}
		pp.kr, pp.kw = fds[0], fds[1]
		// As Go's io.Copy does: a bigger pipe, fewer calls per body.
		// Refused (past the user's pipe quota), the default serves.
		unix.FcntlInt(uintptr(pp.kr), unix.F_SETPIPE_SZ, relayPipeSize)
		if pp.kcap, _ = unix.FcntlInt(uintptr(pp.kr), unix.F_GETPIPE_SZ, 0); pp.kcap <= 0 {
			pp.kcap = 64 << 10
		}
	}
	if pp.inPipe == 0 && pp.inBody && src.readable && !pp.eof {
		n, err := rawSplice(src.fd, pp.kw, int(min(pp.body, int64(pp.kcap))))
		switch {
		case err == unix.EAGAIN:
			src.readable = false
		case err == unix.EINTR:
			progress = true
		case err != 0:
			r.closePair(p)
			return false, false
		case n == 0:
			pp.eof, src.readable = true, false
			progress = true
		default:
			pp.inPipe += n
			pp.body -= int64(n)
			progress = true
			if pp.body == 0 {
				pp.inBody = false
				if !request {
					p.pending--
					p.heads >>= 1
				}
			}
		}
	}
	if pp.inPipe > 0 && dst.writable && (p.connected || !request) {
		n, err := rawSplice(pp.kr, dst.fd, pp.inPipe)
		switch {
		case err == unix.EAGAIN:
			dst.writable = false
		case err == unix.EINTR:
			progress = true
		case err != 0:
			r.closePair(p)
			return false, false
		default:
			// Short is not full here: a splice may stop early (at a pipe
			// buffer's end) with room left, and then no EPOLLOUT would
			// come. Only EAGAIN says full.
			pp.inPipe -= n
			progress = progress || n > 0
		}
	}
	return progress, true
}

// closePipe closes pp's kernel pipe, if it has one.
func (pp *pipe) closePipe() {
	if pp.kr >= 0 {
		unix.Close(pp.kr)
		unix.Close(pp.kw)
	}
	pp.kr, pp.kw, pp.kcap, pp.inPipe = -1, -1, 0, 0
}

// parse advances pp.fwd over the messages in pp.buf[fwd:end]: bodies as
// they arrive, heads once complete.
func (r *relay) parse(p *pair, pp *pipe, request bool) (progress bool, err error) {
	for pp.fwd < pp.end {
		if pp.inBody {
			k := min(int64(pp.end-pp.fwd), pp.body)
			pp.fwd += int(k)
			pp.body -= k
			progress = true
			if pp.body == 0 {
				pp.inBody = false
				if !request {
					p.pending--
					p.heads >>= 1
				}
			}
			continue
		}
		switch {
		case request && p.pending == relayMaxPending:
			return progress, nil // until a response completes
		case !request && p.pending == 0:
			return progress, errUnsolicited
		}
		h, err := parseHead(pp.buf[pp.fwd:pp.end], request)
		if err != nil {
			return progress, err
		}
		if h.n == 0 {
			if pp.fwd == 0 && pp.end == len(pp.buf) {
				return progress, errHeadTooLarge
			}
			return progress, nil // the rest of the head is still to come
		}
		pp.fwd += h.n
		progress = true
		body := max(h.length, 0)
		if request {
			if h.head {
				p.heads |= 1 << p.pending
			}
			p.pending++
		} else {
			switch {
			case h.status == 101:
				return progress, errUpgrade
			case h.status < 200:
				continue // informational: the final response follows
			case p.heads&1 != 0 || h.status == 204 || h.status == 304:
				body = 0
			case h.length < 0:
				return progress, errNoLength
			}
			if body == 0 {
				p.pending--
				p.heads >>= 1
				continue
			}
		}
		if body > 0 {
			pp.inBody, pp.body = true, body
		}
	}
	return progress, nil
}

// epollWait is epoll_wait(2) as a raw system call. The relay's calls on
// the hot path, epoll_wait, read and write, are all raw system calls,
// unknown to the Go scheduler. Through unix.EpollWait, unix.Read and
// unix.Write the goroutine's P would enter the syscall state each time,
// and with GOMAXPROCS=1 the runtime's monitor thread (sysmon) takes the P
// back from any call it sees spanning its 20 µs tick (a wait, or a write
// that runs the receiver's TCP stack on loopback, or one preempted by
// another process), hands it off, wakes a thread, and never slows its
// polling down: measured here, that thread alone spent a fifth of the
// relay's CPU. As raw calls, the goroutine is simply running, and sysmon
// backs off to a look every 10 ms. The costs: the relay's thread holds its
// P while it waits, so it must have a process to itself (run starts it so)
// or a P to spare (tests); and the other goroutines (signals, the
// context's watcher) run when the wait returns EINTR (sysmon's preemption
// signal, every 10 ms of waiting) or times out, and run yields. Every
// descriptor is non-blocking, so no other call blocks.
func epollWait(epfd int, events []unix.EpollEvent, msec int) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(msec), 0, 0)
	return int(n), errno
}

// rawIO is read(2) or write(2) (trap SYS_READ or SYS_WRITE) of b on fd
// as a raw call.
func rawIO(trap uintptr, fd int, b []byte) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(n), errno
}

// rawSplice is splice(2) of up to n bytes from in to out, as a raw call.
func rawSplice(in, out, n int) (int, unix.Errno) {
	m, _, errno := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n),
		unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	return int(m), errno
}

// get returns a pair in its initial state, reusing a closed one's buffers.
func (r *relay) get() *pair {
	p := r.free
	if p == nil {
		return &pair{up: pipe{buf: make([]byte, relayRequestBuffer), kr: -1, kw: -1},
			down: pipe{buf: make([]byte, relayResponseBuffer), kr: -1, kw: -1}}
	}
	r.free = p.next
	*p = pair{up: pipe{buf: p.up.buf, kr: p.up.kr, kw: p.up.kw, kcap: p.up.kcap},
		down: pipe{buf: p.down.buf, kr: p.down.kr, kw: p.down.kw, kcap: p.down.kcap}}
	return p
}

// closePair closes both sockets of p and keeps p for reuse. The caller
// must not touch p after that but to see p.closed.
func (r *relay) closePair(p *pair) {
	if p.closed {
		return
	}
	p.closed = true
	for _, e := range []*endpoint{&p.client, &p.backend} {
		if e.fd < len(r.byFD) && r.byFD[e.fd] == p {
			r.byFD[e.fd] = nil
		}
		unix.Close(e.fd)
	}
	for _, pp := range []*pipe{&p.up, &p.down} {
		if pp.inPipe > 0 {
			pp.closePipe() // holds the rest of a body nobody will read
		}
	}
	p.next = r.free
	r.free = p
}

// closeAll closes every pair and the relay's own descriptors.
func (r *relay) closeAll() {
	for _, p := range r.byFD {
		if p != nil {
			r.closePair(p)
		}
	}
	for p := r.free; p != nil; p = p.next {
		p.up.closePipe()
		p.down.closePipe()
	}
	r.free = nil
	r.closeFDs()
}

func (r *relay) closeFDs() {
	for _, fd := range []*int{&r.lfd, &r.wakefd, &r.epfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// head is what the relay needs to know of a message head.
type head struct {
	n      int   // bytes through the blank line; 0 while the head is incomplete
	length int64 // Content-Length, or -1 when absent
	head   bool  // (request) the method is HEAD
	status int   // (response) the status code
}

var crlf = []byte("\r\n")

// parseHead reads the head at the start of b: a request's when request is
// set, else a response's. It returns n == 0 when b holds no complete head
// yet, and an error for what the relay does not relay (chunked or other
// transfer codings, malformed heads).
func parseHead(b []byte, request bool) (head, error) {
	h := head{length: -1}
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return h, nil
	}
	h.n = end + 4
	lines := b[:end+2]
	i := bytes.Index(lines, crlf)
	first := lines[:i]
	lines = lines[i+2:]
	if request {
		sp := bytes.IndexByte(first, ' ')
		if sp <= 0 {
			return h, errBadHead
		}
		h.head = string(first[:sp]) == "HEAD"
	} else {
		// HTTP/1.x SSS[ reason]
		if len(first) < 12 || string(first[:7]) != "HTTP/1." || first[8] != ' ' || (len(first) > 12 && first[12] != ' ') {
			return h, errBadHead
		}
		for _, c := range first[9:12] {
			if c < '0' || c > '9' {
				return h, errBadHead
			}
			h.status = h.status*10 + int(c-'0')
		}
	}
	for len(lines) > 0 {
		i := bytes.Index(lines, crlf)
		line := lines[:i]
		lines = lines[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return h, errBadHead // no name, or an obsolete folded line
		}
		name, value := line[:colon], bytes.Trim(line[colon+1:], " \t")
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || (h.length >= 0 && n != h.length) {
				return h, errBadHead
			}
			h.length = n
		case asciiEqualFold(name, "transfer-encoding"):
			return h, errTransferEncoding
		}
	}
	return h, nil
}

// parseLength parses a Content-Length value: decimal digits, at most 18.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// asciiEqualFold reports whether b equals the lower-case ASCII word s,
// ignoring the case of b.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// sockaddrOf resolves host:port to a socket address and its family.
func sockaddrOf(hostport string) (unix.Sockaddr, int, error) {
	a, err := net.ResolveTCPAddr("tcp", hostport)
	if err != nil {
		return nil, 0, fmt.Errorf("relay: %w", err)
	}
	if len(a.IP) == 0 || a.IP.To4() != nil {
		sa := &unix.SockaddrInet4{Port: a.Port}
		if len(a.IP) != 0 {
			copy(sa.Addr[:], a.IP.To4())
		}
		return sa, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: a.Port}
	copy(sa.Addr[:], a.IP.To16())
	return sa, unix.AF_INET6, nil
}

// sockaddrString formats an IPv4 or IPv6 socket address as host:port.
func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	case *unix.SockaddrInet6:
		return net.JoinHostPort(net.IP(a.Addr[:]).String(), strconv.Itoa(a.Port))
	}
	return fmt.Sprint(sa)
}
