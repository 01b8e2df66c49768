package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// tcpListener is one service port listener. Its routes are looked up in
// the current table on every accept, so table swaps never touch it.
type tcpListener struct {
	key  string
	ln   net.Listener
	once sync.Once
}

func (l *tcpListener) close() { l.once.Do(func() { l.ln.Close() }) }

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
		if _, ok := t.services[key]; !ok {
			p.log.Info("closing service port", "listen", key)
			l.close()
			delete(p.listeners, key)
		}
	}
	for key, r := range t.services {
		if _, ok := p.listeners[key]; ok {
			continue
		}
		ln, err := net.Listen("tcp", key)
		if err != nil {
			p.metrics.listenErrors.Inc()
			p.log.Error("cannot open service port", "listen", key, "app", r.App, "err", err)
			continue
		}
		l := &tcpListener{key: key, ln: ln}
		p.listeners[key] = l
		p.log.Info("opened service port", "listen", key, "app", r.App, "mode", r.Mode)
		p.conns.Add(1)
		go p.acceptLoop(l)
	}
	p.metrics.listeners.Set(float64(len(p.listeners)))
}

func (p *Proxy) acceptLoop(l *tcpListener) {
	defer p.conns.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		p.track(true, c)
		p.conns.Add(1)
		go func() {
			defer p.conns.Done()
			defer p.track(false, c)
			p.serveTCP(l.key, c)
		}()
	}
}

// serveTCP forwards one connection to a backend of the service port.
func (p *Proxy) serveTCP(key string, c net.Conn) {
	defer c.Close()
	r := p.table.Load().services[key]
	if r == nil || len(r.Backends) == 0 {
		return
	}
	port := r.Listen
	p.metrics.tcpConns.WithLabelValues(port).Inc()
	p.metrics.tcpActive.WithLabelValues(port).Inc()
	defer p.metrics.tcpActive.WithLabelValues(port).Dec()
	var ip net.IP
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = a.IP
	}
	first, n, now := pick(r, ip), len(r.Backends), time.Now().UnixNano()
	var be net.Conn
	var err error
	// As on the HTTP path: ejected backends are passed over unless all are.
dial:
	for pass, tried := 0, 0; pass < 2 && tried == 0; pass++ {
		for k := 0; k < n && tried <= r.Retries; k++ {
			b := &r.Backends[(first+k)%n]
			if pass == 0 && !b.client.health.available(now) {
				continue
			}
			tried++
			if be, err = net.DialTimeout("tcp", b.Addr, connectTimeout); err == nil {
				b.client.health.success()
				b.client.inflight.Add(1)
				defer b.client.inflight.Add(-1)
				break dial
			}
			p.fail(b)
			p.metrics.backendErrors.WithLabelValues(r.App).Inc()
		}
	}
	if be == nil {
		return
	}
	defer be.Close()
	p.track(true, be)
	defer p.track(false, be)
	// Both directions as plain *net.TCPConn copies, so the kernel splices;
	// each side's EOF is passed on as a half-close.
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(be, c)
		closeWrite(be)
	}()
	io.Copy(c, be)
	closeWrite(c)
	<-done
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
