package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// udpPrefix marks UDP listeners among the proxy's listeners, whose keys
// are otherwise the TCP "ip:port".
const udpPrefix = "udp/"

// maxUDPSessions caps the clients one UDP service port tracks at once
// (KEEL_{n}_MAX_CONNS lowers it): a flood of spoofed sources costs at most
// this many upstream sockets.
const maxUDPSessions = 10_000

// maxDatagram is the largest UDP payload.
const maxDatagram = 64 << 10

// udpListener is one UDP service port. Each client address gets a session:
// an upstream socket connected to the backend picked for it, so the
// backend's replies come back on that socket and are sent to that client.
// A session ends after the UDP idle timeout without a datagram either way.
type udpListener struct {
	p    *Proxy
	key  string // "ip:port", the table's key
	pc   *net.UDPConn
	idle time.Duration

	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	closed   bool
}

type udpSession struct {
	client  netip.AddrPort
	addr    string // backend address
	backend *backendClient
	up      *net.UDPConn
	last    atomic.Int64 // unix nanoseconds of the last datagram either way
	once    sync.Once
	series  l4Key // the app's series, held until the reply loop ends
	m       *l4Counters
}

func (s *udpSession) close() { s.once.Do(func() { s.up.Close() }) }

func (p *Proxy) udpIdleTimeout() time.Duration {
	if p.cfg.UDPIdleTimeout <= 0 {
		return defaultUDPIdle
	}
	return p.cfg.UDPIdleTimeout
}

// reconcileUDP opens the UDP service ports t needs and closes the ones it
// no longer has. Caller holds p.mu.
func (p *Proxy) reconcileUDP(t *Table) {
	for key, l := range p.listeners {
		if l.udp == nil {
			continue
		}
		r, ok := t.udp[l.udp.key]
		if !ok {
			p.log.Info("closing UDP service port", "listen", l.udp.key)
			l.close()
			delete(p.listeners, key)
			continue
		}
		l.serve(r.App) // the port may have passed to another app
	}
	for addr, r := range t.udp {
		key := udpPrefix + addr
		if _, ok := p.listeners[key]; ok {
			continue
		}
		ua, err := net.ResolveUDPAddr("udp", addr)
		var pc *net.UDPConn
		if err == nil {
			pc, err = net.ListenUDP("udp", ua)
		}
		if err != nil {
			p.metrics.listenErrors.Inc()
			p.log.Error("cannot open UDP service port", "listen", addr, "app", r.App, "err", err)
			continue
		}
		u := &udpListener{p: p, key: addr, pc: pc, idle: p.udpIdleTimeout(), sessions: map[netip.AddrPort]*udpSession{}}
		l := &tcpListener{key: key, udp: u, series: p.metrics.l4, proto: protoUDP, listen: addr}
		l.serve(r.App)
		p.listeners[key] = l
		p.log.Info("opened UDP service port", "listen", addr, "app", r.App)
		p.conns.Add(1)
		go u.readLoop()
	}
}

// close stops the listener and ends every session.
func (u *udpListener) close() {
	u.mu.Lock()
	u.closed = true
	for _, s := range u.sessions {
		s.close()
	}
	u.mu.Unlock()
	u.pc.Close()
}

// readLoop forwards the clients' datagrams until the listener closes.
func (u *udpListener) readLoop() {
	defer u.p.conns.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			u.mu.Lock()
			closed := u.closed
			u.mu.Unlock()
			if closed {
				return
			}
			continue // e.g. an ICMP error of an earlier reply
		}
		r := u.p.table.Load().udp[u.key]
		if r == nil || len(r.Backends) == 0 {
			continue
		}
		s := u.session(r, client)
		if s == nil {
			continue
		}
		s.last.Store(time.Now().UnixNano())
		// Counted before it goes: its reply may be counted as soon as it is sent.
		s.m.datagramsIn.Inc()
		s.m.bytesIn.Add(float64(n))
		if _, err := s.up.Write(buf[:n]); err != nil {
			s.close()
			continue
		}
	}
}

// session returns client's session, starting one on a backend of r if it
// has none or its backend left the route; nil when none can be had.
func (u *udpListener) session(r *Route, client netip.AddrPort) *udpSession {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	if s := u.sessions[client]; s != nil {
		for i := range r.Backends {
			if r.Backends[i].Addr == s.addr {
				return s
			}
		}
		s.close() // its backend is gone: the reply loop removes it
		delete(u.sessions, client)
	}
	limit := maxUDPSessions
	if r.MaxConns > 0 && r.MaxConns < limit {
		limit = r.MaxConns
	}
	if len(u.sessions) >= limit {
		return nil
	}
	first, n, now := pick(r, net.IP(client.Addr().AsSlice())), len(r.Backends), time.Now().UnixNano()
	for pass := 0; pass < 2; pass++ {
		for k := 0; k < n; k++ {
			b := &r.Backends[(first+k)%n]
			if b.client == nil || (pass == 0 && !b.client.health.available(now)) {
				continue
			}
			c, err := net.DialTimeout("udp", b.Addr, connectTimeout)
			if err != nil {
				u.p.fail(b)
				u.p.metrics.backendErrors.WithLabelValues(r.App).Inc()
				continue
			}
			s := &udpSession{client: client, addr: b.Addr, backend: b.client, up: c.(*net.UDPConn),
				series: l4Key{protoUDP, r.App, u.key}}
			s.m = u.p.metrics.l4.acquire(s.series)
			s.m.opened.Inc()
			s.m.active.Inc()
			s.last.Store(now)
			u.sessions[client] = s
			u.p.conns.Add(1)
			go u.replyLoop(s)
			return s
		}
	}
	return nil
}

// replyLoop sends the backend's datagrams to the session's client until
// the session is idle for the timeout or fails.
func (u *udpListener) replyLoop(s *udpSession) {
	defer u.p.conns.Done()
	defer func() {
		s.close()
		u.mu.Lock()
		if u.sessions[s.client] == s {
			delete(u.sessions, s.client)
		}
		u.mu.Unlock()
		s.m.active.Dec()
		u.p.metrics.l4.release(s.series)
	}()
	buf := make([]byte, maxDatagram)
	for {
		s.up.SetReadDeadline(time.Unix(0, s.last.Load()).Add(u.idle))
		n, err := s.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, s.last.Load())) < u.idle {
				continue // a datagram from the client moved the deadline
			}
			if errors.Is(err, syscall.ECONNREFUSED) { // ICMP port unreachable
				u.p.fail(&Backend{Addr: s.addr, client: s.backend})
			}
			return
		}
		s.backend.health.success()
		s.last.Store(time.Now().UnixNano())
		if _, err := u.pc.WriteToUDPAddrPort(buf[:n], s.client); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.m.datagramsOut.Inc()
		s.m.bytesOut.Add(float64(n))
	}
}
