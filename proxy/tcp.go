package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Default L4 timeouts. marathon-lb's HAProxy applies "timeout tunnel
// 3600s" to an established TCP connection, so a service port connection
// that moves no byte either way for an hour is closed.
const (
	defaultTCPIdle = time.Hour
	defaultUDPIdle = time.Minute
)

// tcpListener is one service port listener: TCP (ln), or UDP (udp) for
// keys with the "udp/" prefix. Its routes are looked up in the current
// table on every accept (datagram), so table swaps never touch it.
type tcpListener struct {
	key  string
	ln   net.Listener // the goroutine path's (TCPEngine "go")
	loop *tloop       // or the TCP loop's, as tl
	tl   *tlisten
	udp  *udpListener
	once sync.Once

	// series holds the metric series of app, the app the table gives the
	// port, while the listener is open; guarded by Proxy.mu.
	series *l4Series
	proto  string // protoTCP or protoUDP
	listen string // "ip:port"
	app    string
}

// serve makes app the one whose series the listener holds. Caller holds
// Proxy.mu.
func (l *tcpListener) serve(app string) {
	l.series.listen(l.proto, l.listen, l.app, app)
	l.app = app
}

// close stops the listener and lets go of its app's series (connections
// still open keep theirs). Caller holds Proxy.mu.
func (l *tcpListener) close() {
	l.once.Do(func() {
		if l.ln != nil {
			l.ln.Close()
		}
		if l.loop != nil {
			l.loop.unlisten(l.tl)
		}
		if l.udp != nil {
			l.udp.close()
		}
		l.serve("")
	})
}

// idleTimeout is the configured TCP idle timeout (negative: none).
func (p *Proxy) idleTimeout() time.Duration {
	if p.cfg.TCPIdleTimeout == 0 {
		return defaultTCPIdle
	}
	return p.cfg.TCPIdleTimeout
}

// tcpKeepAlive is the TCP keep-alive period of service port connections,
// both sides: none while the idle timeout watches them (it closes a dead
// peer's connection as an idle one, and keep-alive would cost eight
// setsockopt calls a connection, as HAProxy does without by default); Go's
// default when the idle timeout is off.
func (p *Proxy) tcpKeepAlive() time.Duration {
	if p.idleTimeout() > 0 {
		return -1
	}
	return 0
}

// track adds (or with add false, removes) live connections, so shutdown
// can cut what does not drain in time.
func (p *Proxy) track(add bool, cs ...net.Conn) {
	p.activeMu.Lock()
	defer p.activeMu.Unlock()
	for _, c := range cs {
		if add {
			p.active[c] = struct{}{}
		} else {
			delete(p.active, c)
		}
	}
}

// reconcileListeners opens the service ports t needs and closes the ones
// it no longer has. Caller holds p.mu.
func (p *Proxy) reconcileListeners(t *Table) {
	for key, l := range p.listeners {
		if l.udp != nil {
			continue // reconcileUDP's
		}
		r, ok := t.services[key]
		if !ok {
			p.log.Info("closing service port", "listen", key)
			l.close()
			delete(p.listeners, key)
			continue
		}
		l.serve(r.App) // the port may have passed to another app
	}
	for key, r := range t.services {
		if _, ok := p.listeners[key]; ok {
			continue
		}
		ln, err := (&net.ListenConfig{KeepAlive: p.tcpKeepAlive()}).Listen(context.Background(), "tcp", key)
		if err != nil {
			p.metrics.listenErrors.Inc()
			p.log.Error("cannot open service port", "listen", key, "app", r.App, "err", err)
			continue
		}
		l := &tcpListener{key: key, series: p.metrics.l4, proto: protoTCP, listen: key}
		if p.cfg.TCPEngine == "loop" {
			if err := p.loopListen(l, ln.(*net.TCPListener)); err != nil {
				p.metrics.listenErrors.Inc()
				p.log.Error("cannot serve service port", "listen", key, "app", r.App, "err", err)
				continue
			}
		} else {
			l.ln = ln
			p.conns.Add(1)
			go p.acceptLoop(l)
		}
		l.serve(r.App)
		p.listeners[key] = l
		p.log.Info("opened service port", "listen", key, "app", r.App, "mode", r.Mode)
	}
	p.reconcileUDP(t)
	p.metrics.listeners.Set(float64(len(p.listeners)))
}

// loopListen has the TCP loop, started with the first service port,
// serve l from ln (which it closes). Caller holds p.mu.
func (p *Proxy) loopListen(l *tcpListener, ln *net.TCPListener) error {
	if p.tloop == nil {
		t, err := newTLoop(p)
		if err != nil {
			ln.Close()
			return err
		}
		p.tloop = t
		p.conns.Add(1)
		go func() {
			defer p.conns.Done()
			t.run()
		}()
	}
	tl, err := p.tloop.listen(l.key, ln)
	if err != nil {
		return err
	}
	l.loop, l.tl = p.tloop, tl
	return nil
}

// acceptLoop serves l until it is closed. A failed accept (out of file
// descriptors, say) is retried after a pause that doubles up to a second,
// as net/http's server does: returning would leave the port open and
// dead.
func (p *Proxy) acceptLoop(l *tcpListener) {
	defer p.conns.Done()
	var pause time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.metrics.acceptErrors.Inc()
			if pause == 0 {
				p.log.Warn("service port accept", "listen", l.key, "err", err)
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			time.Sleep(pause)
			continue
		}
		pause = 0
		p.track(true, c)
		p.conns.Add(1)
		go func() {
			defer p.conns.Done()
			defer p.track(false, c)
			p.serveTCP(l.key, c)
		}()
	}
}

// admitTCP takes a slot of r's KEEL_{n}_MAX_CONNS for a connection on the
// service port key, or reports false (logged) when r has none left: the
// cap counts TCP connections on the port too, together with the route's
// HTTP requests, and a connection beyond it is closed at once. Whoever is
// admitted gives the slot back (r.active) when r.MaxConns > 0.
func (p *Proxy) admitTCP(r *Route, key string) bool {
	if r.MaxConns <= 0 {
		return true
	}
	if r.active.Add(1) > int64(r.MaxConns) {
		r.active.Add(-1)
		p.log.Debug("service port connection refused: KEEL_MAX_CONNS reached", "listen", key, "app", r.App, "max_conns", r.MaxConns)
		return false
	}
	return true
}

// serveTCP forwards one connection to a backend of the service port.
func (p *Proxy) serveTCP(key string, c net.Conn) {
	defer c.Close()
	r := p.table.Load().services[key]
	if r == nil || len(r.Backends) == 0 {
		return
	}
	if !p.admitTCP(r, key) {
		return
	}
	if r.MaxConns > 0 {
		defer r.active.Add(-1)
	}
	series := l4Key{protoTCP, r.App, key}
	m := p.metrics.l4.acquire(series)
	defer p.metrics.l4.release(series)
	m.opened.Inc()
	m.active.Inc()
	defer m.active.Dec()
	var ip net.IP
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP
	}
	tries := attempts{r: r, first: pick(r, ip)}
	var be net.Conn
	for {
		i, ok := tries.next(time.Now().UnixNano())
		if !ok {
			break
		}
		b := &r.Backends[i]
		var err error
		if be, err = (&net.Dialer{Timeout: connectTimeout, KeepAlive: p.tcpKeepAlive()}).Dial("tcp", b.Addr); err == nil {
			b.client.health.success()
			b.client.inflight.Add(1)
			defer b.client.inflight.Add(-1)
			break
		}
		p.fail(b)
		p.metrics.backendErrors.WithLabelValues(r.App).Inc()
	}
	if be == nil {
		return
	}
	defer be.Close()
	p.track(true, be)
	defer p.track(false, be)
	// Both directions as plain *net.TCPConn copies, so the kernel splices;
	// each side's EOF is passed on as a half-close. The copies' own counts
	// are the byte counters: nothing wraps the conns to count as it goes.
	done := make(chan struct{})
	stopIdle := p.watchIdle(c, be, done)
	defer stopIdle()
	var in int64
	go func() {
		defer close(done)
		in, _ = io.Copy(be, c)
		closeWrite(be)
	}()
	out, _ := io.Copy(c, be)
	closeWrite(c)
	<-done
	m.bytesIn.Add(float64(in))
	m.bytesOut.Add(float64(out))
}

// watchIdle closes the pair c, be once neither has moved a byte for the
// idle timeout. It never wraps the conns (which would stop the kernel
// splicing): a timer per pair asks the kernel, by TCP_INFO, how long ago
// each socket last sent or received data, and sleeps for the rest of the
// timeout when that is less. An active pair thus costs one wake-up per
// idle timeout. done is closed when the copy is over; the returned func
// stops the watch.
func (p *Proxy) watchIdle(c, be net.Conn, done <-chan struct{}) (stop func()) {
	idle := p.idleTimeout()
	if idle < 0 {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	var timer *time.Timer
	mu.Lock()
	defer mu.Unlock()
	timer = time.AfterFunc(idle, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		select {
		case <-done:
			return
		default:
		}
		quiet := min(sinceData(c), sinceData(be))
		if quiet < idle {
			timer.Reset(idle - quiet)
			return
		}
		p.log.Debug("closing idle service port connection", "remote", c.RemoteAddr().String(), "backend", be.RemoteAddr().String(), "idle", quiet)
		// A past deadline ends both copies without closing under them.
		past := time.Unix(1, 0)
		c.SetDeadline(past)
		be.SetDeadline(past)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		timer.Stop()
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		c.Close()
	}
}

// waitConns waits for open TCP connections, cutting them after drainTimeout.
func (p *Proxy) waitConns() {
	p.activeMu.Lock()
	p.draining = true
	p.activeMu.Unlock()
	done := make(chan struct{})
	go func() {
		p.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(drainTimeout):
	}
	p.activeMu.Lock()
	for c := range p.active {
		c.Close()
	}
	p.activeMu.Unlock()
	<-done
}
