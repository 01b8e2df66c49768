package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// hasToken reports whether a comma-separated header value holds token,
// case-insensitively.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if bytes.EqualFold(bytes.Trim(item, " \t"), []byte(token)) {
			return true
		}
	}
	return false
}

// tunnel sends an upgrade request to a backend of its own connection.
// When the backend answers 101 Switching Protocols the client connection
// is hijacked and bytes flow both ways until either side closes; any
// other answer is relayed as an ordinary response.
func (p *Proxy) tunnel(ctx *fasthttp.RequestCtx, r *Route, first int, start time.Time) {
	n, now := len(r.Backends), start.UnixNano()
	var be net.Conn
	var b *Backend
	var err error
dial:
	for pass := 0; pass < 2 && be == nil; pass++ {
		for k, tried := 0, 0; k < n && tried <= r.Retries; k++ {
			c := &r.Backends[(first+k)%n]
			if pass == 0 && !c.client.health.available(now) {
				continue
			}
			tried++
			if be, err = net.DialTimeout("tcp", c.Addr, connectTimeout); err == nil {
				b = c
				break dial
			}
			p.fail(c)
			p.metrics.backendErrors.WithLabelValues(r.App).Inc()
		}
		if err != nil {
			break // every allowed attempt failed; do not retry the ejected ones
		}
	}
	if be == nil {
		ctx.Error(fasthttp.StatusMessage(fasthttp.StatusBadGateway)+"\n", fasthttp.StatusBadGateway)
		p.observe(r, fasthttp.StatusBadGateway, start)
		return
	}
	fail := func(err error) {
		be.Close()
		p.fail(b)
		p.metrics.backendErrors.WithLabelValues(r.App).Inc()
		p.log.Debug("upgrade failed", "app", r.App, "backend", b.Addr, "err", err)
		code := fasthttp.StatusBadGateway
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			code = fasthttp.StatusGatewayTimeout
		}
		ctx.Error(fasthttp.StatusMessage(code)+"\n", code)
		p.observe(r, code, start)
	}
	_ = be.SetDeadline(time.Now().Add(r.ResponseTimeout))
	bw := bufio.NewWriter(be)
	if err := ctx.Request.Write(bw); err != nil {
		fail(err)
		return
	}
	if err := bw.Flush(); err != nil {
		fail(err)
		return
	}
	br := bufio.NewReader(be)
	head, code, err := readResponseHead(br)
	if err != nil {
		fail(err)
		return
	}
	if code != fasthttp.StatusSwitchingProtocols {
		// The backend declined: relay its answer and drop the connection.
		err := ctx.Response.Read(bufio.NewReader(io.MultiReader(bytes.NewReader(head), br)))
		be.Close()
		if err != nil {
			ctx.Response.Reset()
			fail(err)
			return
		}
		if code >= 500 {
			p.fail(b)
		} else {
			b.client.health.success()
		}
		cleanResponse(&ctx.Response.Header)
		p.observe(r, code, start)
		return
	}
	b.client.health.success()
	p.metrics.upgrades.Inc()
	p.observe(r, code, start)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) { p.pipe(c, be, br, head, r, b) })
}

// pipe relays the backend's 101 and then bytes both ways. c is fasthttp's
// hijacked connection: reads go through it (it holds what the client sent
// early), closes go to the connection under it.
func (p *Proxy) pipe(c, be net.Conn, br *bufio.Reader, head []byte, r *Route, b *Backend) {
	defer be.Close()
	raw := c
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	if !p.enter() {
		return
	}
	defer p.conns.Done()
	p.track(true, raw, be)
	defer p.track(false, raw, be)
	b.client.inflight.Add(1)
	defer b.client.inflight.Add(-1)
	if r.MaxConns > 0 {
		r.active.Add(1)
		defer r.active.Add(-1)
	}
	_ = be.SetDeadline(time.Time{})
	if _, err := raw.Write(head); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(be, c)
		closeWrite(be)
	}()
	_, _ = io.Copy(raw, br)
	// The backend is done: so is the client (a WebSocket has no use for a
	// half-open connection), which also ends the other copy.
	raw.Close()
	<-done
}

// enter counts a tunnel in p.conns unless shutdown is already waiting.
func (p *Proxy) enter() bool {
	p.activeMu.Lock()
	defer p.activeMu.Unlock()
	if p.draining {
		return false
	}
	p.conns.Add(1)
	return true
}

// readResponseHead reads a response's status line and headers, as they
// came, and its status code.
func readResponseHead(br *bufio.Reader) ([]byte, int, error) {
	var head []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, 0, fmt.Errorf("proxy: reading upgrade response: %w", err)
		}
		head = append(head, line...)
		if len(head) > maxHeaderBytes {
			return nil, 0, fmt.Errorf("proxy: upgrade response header over %d bytes", maxHeaderBytes)
		}
		if len(head) > len(line) && (string(line) == "\r\n" || string(line) == "\n") {
			break // the blank line after the headers
		}
	}
	// "HTTP/1.1 101 Switching Protocols"
	sp := bytes.IndexByte(head, ' ')
	if sp < 0 || len(head) < sp+4 || !bytes.HasPrefix(head, []byte("HTTP/1.")) {
		return nil, 0, fmt.Errorf("proxy: malformed upgrade response status line")
	}
	code, err := strconv.Atoi(string(head[sp+1 : sp+4]))
	if err != nil {
		return nil, 0, fmt.Errorf("proxy: malformed upgrade response status: %w", err)
	}
	return head, code, nil
}
