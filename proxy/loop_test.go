//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keelhq/keel/internal/leakcheck"
)

// startEngine runs a proxy whose plain HTTP listener is served by engine
// ("loop" or "fasthttp") and returns it with the listener's address.
func startEngine(tb testing.TB, engine string) (*Proxy, string, *loop) {
	tb.Helper()
	if t, ok := tb.(*testing.T); ok {
		leakcheck.Check(t) // a sub-benchmark would see its parent's goroutine
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	cfg := Config{ServiceBind: "127.0.0.1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if engine == "fasthttp" {
		ln.Close()
		cfg.HTTPAddr = addr
	}
	p, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	n := 1
	go func() { done <- p.Run(ctx) }()
	var l *loop
	if engine == "loop" {
		_, p.httpPort, _ = net.SplitHostPort(addr)
		l, err = newLoop(p, ln.(*net.TCPListener), p.newServer(p.serveHTTP))
		if err != nil {
			cancel()
			<-done
			tb.Fatal(err)
		}
		n++
		go func() { done <- l.run(ctx) }()
	}
	tb.Cleanup(func() {
		cancel()
		for range n {
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				tb.Error("proxy did not stop")
				return
			}
		}
	})
	if engine == "fasthttp" {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("proxy not listening on %s", addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return p, addr, l
}

func startLoop(t *testing.T) (*Proxy, string, *loop) {
	t.Helper()
	return startEngine(t, "loop")
}

// loopServed checks that the loop, not the fasthttp path, had every
// connection so far.
func loopServed(t *testing.T, l *loop) {
	t.Helper()
	if n := l.handoffs.Load(); n != 0 {
		t.Fatalf("%d connections handed off", n)
	}
}

// rawClient is one client connection speaking raw HTTP/1.1.
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends a raw request and reads the response (method is for framing).
func (rc *rawClient) do(method, raw string) (*http.Response, string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, raw); err != nil {
		rc.t.Fatal(err)
	}
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("%q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatalf("%q: body: %v", raw, err)
	}
	return resp, string(body)
}

// closed reports whether the proxy closed the connection (EOF).
func (rc *rawClient) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

func route(p *Proxy, vhost string, labels map[string]string, ports ...uint32) {
	l := map[string]string{"HAPROXY_0_VHOST": vhost}
	for k, v := range labels {
		l[k] = v
	}
	var tasks = snap(1).Tasks
	for i, port := range ports {
		tasks = append(tasks, task("/web", fmt.Sprintf("web.%d", i), "127.0.0.1", []uint32{port}, nil, l))
	}
	p.Update(snap(p.table.Load().Generation+1, tasks...))
}

// rawBackend answers each request by path, as raw bytes; it returns the
// port and a count of the connections it accepted.
// pattern is a response body in which a byte out of place shows: 3 MiB of
// a sequence that repeats every 251 bytes.
var pattern = func() []byte {
	b := make([]byte, 3<<20)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}()

func rawBackend(t *testing.T) (uint32, *atomic.Int64) {
	var conns atomic.Int64
	big := strings.Repeat("x", 1<<20)
	port := tcpBackend(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			switch req.URL.Path {
			case "/small":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!")
			case "/pattern":
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(pattern))
				c.Write(pattern)
			case "/cut":
				// Promises the whole pattern, sends a fifth, and hangs up.
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(pattern))
				c.Write(pattern[:len(pattern)/5])
				return
			case "/big":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n"+big)
			case "/chunked":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				time.Sleep(20 * time.Millisecond) // the end comes in a later read
				io.WriteString(c, "7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
			case "/close":
				io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
				return
			case "/head":
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
			case "/204":
				io.WriteString(c, "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n")
			case "/continue":
				io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case "/echo":
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s %s", len(req.Method)+1+len(body), req.Method, body)
			case "/garbage":
				io.WriteString(c, "this is not HTTP\r\n\r\n")
				return
			case "/lf":
				io.WriteString(c, "HTTP/1.1 200 OK\nContent-Length: 2\n\nlf")
			case "/error":
				io.WriteString(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")
			default:
				io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			}
		}
	})
	return port, &conns
}

func TestLoopKeepAlive(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, conns := rawBackend(t)
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)
	for i := 0; i < 3; i++ {
		resp, body := rc.do("GET", "GET /small HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		if resp.StatusCode != 200 || body != "hello world!" {
			t.Fatalf("small: %d %q", resp.StatusCode, body)
		}
		resp, body = rc.do("GET", "GET /big HTTP/1.1\r\nHost: Web.Example.com:80\r\n\r\n")
		if resp.StatusCode != 200 || len(body) != 1<<20 || strings.Trim(body, "x") != "" {
			t.Fatalf("big: %d, %d bytes", resp.StatusCode, len(body))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("backend saw %d connections for 6 sequential requests, want 1 (pooled)", n)
	}
	// Two requests in one write: the second is served after the first.
	io.WriteString(rc.c, "GET /small HTTP/1.1\r\nHost: web.example.com\r\n\r\nGET /echo HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	for _, want := range []string{"hello world!", "GET "} {
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("pipelined: %q, want %q", body, want)
		}
	}
}

// TestLoopLongBody: a long Content-Length body passes byte for byte, in
// turns of the fair share, and the connection stays usable after it; a body the backend cuts short
// closes the client's connection, and clients that hang up in the middle
// of one leave nothing behind for the next.
func TestLoopLongBody(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, _ := rawBackend(t)
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)
	for i := 0; i < 3; i++ {
		resp, body := rc.do("GET", "GET /pattern HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		if resp.StatusCode != 200 || body != string(pattern) {
			t.Fatalf("pattern %d: %d, %d bytes, equal %v", i, resp.StatusCode, len(body), body == string(pattern))
		}
		resp, body = rc.do("GET", "GET /small HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		if body != "hello world!" {
			t.Fatalf("after a long body: %d %q", resp.StatusCode, body)
		}
	}
	if l.yields.Load() == 0 {
		t.Fatal("3 MiB bodies sent in one turn each: the fair share never ended a turn")
	}
	cut := dialRaw(t, addr)
	io.WriteString(cut.c, "GET /cut HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	resp, err := http.ReadResponse(cut.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err == nil || len(got) >= len(pattern) || !bytes.Equal(got, pattern[:len(got)]) {
		t.Fatalf("cut body: %d bytes, err %v; want a prefix of the pattern and an error", len(got), err)
	}
	// Clients that read a little and hang up.
	for i := 0; i < 4; i++ {
		gone := dialRaw(t, addr)
		io.WriteString(gone.c, "GET /pattern HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		io.ReadFull(gone.br, make([]byte, 1000))
		gone.c.Close()
	}
	for i := 0; i < 4; i++ {
		if _, body := rc.do("GET", "GET /pattern HTTP/1.1\r\nHost: web.example.com\r\n\r\n"); body != string(pattern) {
			t.Fatalf("pattern after cut bodies: %d bytes, equal %v", len(body), body == string(pattern))
		}
	}
}

// TestLoopConcurrent: many clients at once, each with a run of
// keep-alive requests of several sizes, all answered in order.
func TestLoopConcurrent(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, _ := rawBackend(t)
	route(p, "web.example.com", nil, port)
	var wg sync.WaitGroup
	var maxLatency atomic.Int64
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			for i := 0; i < 100; i++ {
				path, want := "/small", 12
				if (i+g)%10 == 0 {
					path, want = "/big", 1<<20
				}
				start := time.Now()
				fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: web.example.com\r\n\r\n", path)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("client %d request %d: %w", g, i, err)
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || n != int64(want) {
					errs <- fmt.Errorf("client %d request %d: %d, %d bytes, %v", g, i, resp.StatusCode, n, err)
					return
				}
				if d := int64(time.Since(start)); d > maxLatency.Load() {
					maxLatency.Store(d)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("slowest request: %v", time.Duration(maxLatency.Load()))
}

func TestLoopFraming(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, _ := rawBackend(t)
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)

	resp, body := rc.do("GET", "GET /chunked HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 200 || body != "hello, world" || resp.Trailer.Get("X-Trailer") != "t" {
		t.Fatalf("chunked: %d %q trailer %v", resp.StatusCode, body, resp.Trailer)
	}
	resp, body = rc.do("HEAD", "HEAD /head HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 1000 {
		t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, body = rc.do("GET", "GET /204 HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 204 || body != "" || resp.Header.Get("X-A") != "b" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	resp, body = rc.do("POST", "POST /echo HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 5\r\n\r\nhello")
	if resp.StatusCode != 200 || body != "POST hello" {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	resp, _ = rc.do("GET", "GET /continue HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 103 || resp.Header.Get("Link") != "</a>" {
		t.Fatalf("103: %d %v", resp.StatusCode, resp.Header)
	}
	resp, body = rc.do("GET", "")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("after 103: %d %q", resp.StatusCode, body)
	}
	resp, body = rc.do("GET", "GET /lf HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 200 || body != "lf" {
		t.Fatalf("bare LF response: %d %q", resp.StatusCode, body)
	}
	resp, body = rc.do("GET", "GET /error HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 500 || body != "oops" {
		t.Fatalf("500: %d %q", resp.StatusCode, body)
	}
	// Close-delimited: the body runs to the backend's close, and so does
	// the client's connection.
	resp, body = rc.do("GET", "GET /close HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 200 || body != "until the end" || !resp.Close {
		t.Fatalf("close-delimited: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if !rc.closed() {
		t.Fatal("client connection open after a close-delimited response")
	}
}

func TestLoopClientClose(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, _ := rawBackend(t)
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)
	resp, body := rc.do("GET", "GET /small HTTP/1.1\r\nHost: web.example.com\r\nconnection: Close\r\n\r\n")
	if resp.StatusCode != 200 || body != "hello world!" || !resp.Close {
		t.Fatalf("%d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if !rc.closed() {
		t.Fatal("connection open after Connection: close")
	}
}

// TestLoopHopHeaders: the loop itself (no handoff) cleans hopRequest's
// headers as TestHopHeadersAnyCase expects.
func TestLoopHopHeaders(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, seen := hopBackend(t)
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)
	_, proxyPort, _ := net.SplitHostPort(addr)
	for round := 0; round < 2; round++ {
		resp, body := rc.do("GET", hopRequest)
		checkHop(t, round, resp, body, seen(), proxyPort)
	}
}

// TestLoopStaleKeepAlive: a backend that closes a kept-alive connection
// when the next request arrives on it, without an answer. The loop sends
// the request again on a new connection, which is no backend failure.
func TestLoopStaleKeepAlive(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	var conns atomic.Int64
	port := tcpBackend(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		http.ReadRequest(br) // the next one is dropped with the connection
	})
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)
	for i := 0; i < 4; i++ {
		method := "GET"
		if i%2 == 1 {
			method = "POST" // not idempotent, and still safe to send again: the backend never saw it
		}
		resp, body := rc.do(method, method+" / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 0\r\n\r\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("backend connections: %d, want 4", n)
	}
	st := p.table.Load().routes[0].Backends[0].client.health.status("", 0, time.Now())
	if st.ConsecutiveFailures != 0 {
		t.Errorf("stale keep-alive counted as backend failure: %+v", st)
	}
}

func TestLoopRetryDeadBackend(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, _ := rawBackend(t)
	dead := freePort(t)
	route(p, "web.example.com", nil, dead, port)
	rc := dialRaw(t, addr)
	for i := 0; i < 6; i++ {
		resp, body := rc.do("GET", "GET /small HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		if resp.StatusCode != 200 || body != "hello world!" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// Without retries the dead backend answers 502 when its turn comes,
	// unless it is ejected by then.
	route(p, "solo.example.com", map[string]string{"KEEL_0_RETRIES": "0"}, freePort(t))
	resp, body := rc.do("GET", "GET / HTTP/1.1\r\nHost: solo.example.com\r\n\r\n")
	if resp.StatusCode != 502 || body != "Bad Gateway\n" {
		t.Fatalf("no backend reachable: %d %q", resp.StatusCode, body)
	}
}

func TestLoopGarbageResponse(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port, _ := rawBackend(t)
	route(p, "web.example.com", nil, port)
	rc := dialRaw(t, addr)
	resp, body := rc.do("GET", "GET /garbage HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 502 || body != "Bad Gateway\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if !rc.closed() {
		t.Fatal("client connection open after a malformed response")
	}
}

func TestLoopResponseTimeout(t *testing.T) {
	p, addr, l := startLoop(t)
	defer loopServed(t, l)
	port := tcpBackend(t, func(c net.Conn) {
		io.Copy(io.Discard, c) // never answers
	})
	route(p, "web.example.com", map[string]string{"KEEL_0_TIMEOUT_RESPONSE": "300ms"}, port)
	rc := dialRaw(t, addr)
	start := time.Now()
	resp, body := rc.do("GET", "GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	if resp.StatusCode != 504 || body != "Gateway Timeout\n" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("504 after %v", d)
	}
}

// TestLoopHandoff: requests the loop does not take reach the fasthttp
// path, with what the loop had read of them.
func TestLoopHandoff(t *testing.T) {
	p, addr, l := startLoop(t)
	port, _ := rawBackend(t)
	ws := tcpBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br) // echo
	})
	chunked := tcpBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
	p.Update(snap(1,
		task("/web", "web.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "web.example.com"}),
		task("/ws", "ws.1", "127.0.0.1", []uint32{ws}, nil, map[string]string{"HAPROXY_0_VHOST": "ws.example.com"}),
		task("/up", "up.1", "127.0.0.1", []uint32{chunked}, nil, map[string]string{"HAPROXY_0_VHOST": "up.example.com"}),
		task("/sticky", "s.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "sticky.example.com", "HAPROXY_0_STICKY": "true"}),
	))

	handedOff := func(t *testing.T, before int64) {
		t.Helper()
		if l.handoffs.Load() != before+1 {
			t.Fatalf("handoffs %d, want %d", l.handoffs.Load(), before+1)
		}
	}
	t.Run("websocket", func(t *testing.T) {
		defer handedOff(t, l.handoffs.Load())
		rc := dialRaw(t, addr)
		io.WriteString(rc.c, "GET /ws HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		io.WriteString(rc.c, "ping")
		buf := make([]byte, 4)
		if _, err := io.ReadFull(rc.br, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("tunnel echo: %q %v", buf, err)
		}
	})
	t.Run("chunked request", func(t *testing.T) {
		defer handedOff(t, l.handoffs.Load())
		rc := dialRaw(t, addr)
		resp, body := rc.do("POST", "POST / HTTP/1.1\r\nHost: up.example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
		if resp.StatusCode != 200 || body != "abc" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("sticky", func(t *testing.T) {
		defer handedOff(t, l.handoffs.Load())
		rc := dialRaw(t, addr)
		resp, body := rc.do("GET", "GET /small HTTP/1.1\r\nHost: sticky.example.com\r\n\r\n")
		if resp.StatusCode != 200 || body != "hello world!" || !strings.Contains(resp.Header.Get("Set-Cookie"), stickyName) {
			t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		defer handedOff(t, l.handoffs.Load())
		rc := dialRaw(t, addr)
		resp, body := rc.do("GET", "GET / HTTP/1.1\r\nHost: nope.example.com\r\n\r\n")
		if resp.StatusCode != 404 || body != "no route for host\n" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("smuggling", func(t *testing.T) {
		defer handedOff(t, l.handoffs.Load())
		rc := dialRaw(t, addr)
		resp, _ := rc.do("POST", "POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		if resp.StatusCode != 400 {
			t.Fatalf("CL+TE: %d", resp.StatusCode)
		}
	})
	t.Run("repeated length", func(t *testing.T) {
		defer handedOff(t, l.handoffs.Load())
		rc := dialRaw(t, addr)
		resp, _ := rc.do("POST", "POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello")
		if resp.StatusCode != 400 {
			t.Fatalf("CL twice: %d", resp.StatusCode)
		}
	})
	t.Run("after loop requests", func(t *testing.T) {
		// The loop serves the first requests, then hands the connection
		// over with a request split across reads.
		rc := dialRaw(t, addr)
		resp, body := rc.do("GET", "GET /small HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		if resp.StatusCode != 200 || body != "hello world!" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		defer handedOff(t, l.handoffs.Load())
		io.WriteString(rc.c, "POST /echo HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 5\r\n\r\n")
		time.Sleep(50 * time.Millisecond) // the body comes in a later read: the loop hands it off
		resp, body = rc.do("POST", "hello")
		if resp.StatusCode != 200 || body != "POST hello" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		resp, body = rc.do("GET", "GET /small HTTP/1.0\r\nHost: web.example.com\r\n\r\n")
		if resp.StatusCode != 200 || body != "hello world!" {
			t.Fatalf("HTTP/1.0: %d %q", resp.StatusCode, body)
		}
	})
}

// TestLoopShutdown: a request in flight at shutdown completes; then
// everything is closed (leakcheck, in startEngine).
func TestLoopShutdown(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	port := tcpBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		<-release
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{ServiceBind: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	l, err := newLoop(p, ln.(*net.TCPListener), p.newServer(p.serveHTTP))
	if err != nil {
		t.Fatal(err)
	}
	route(p, "web.example.com", nil, port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.run(ctx) }()
	idle := dialRaw(t, addr)
	rc := dialRaw(t, addr)
	io.WriteString(rc.c, "GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	cancel()
	if !idle.closed() {
		t.Error("idle connection open after shutdown began")
	}
	close(release)
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "late" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loop did not stop")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener open after shutdown")
	}
}

func TestChunkState(t *testing.T) {
	body := "5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\nA: b\r\n\r\n"
	for split := 0; split <= len(body); split++ {
		var s chunkState
		n1, end1, err := s.feed([]byte(body[:split]))
		if err != nil || end1 && split < len(body) {
			t.Fatalf("split %d: first part %d %v %v", split, n1, end1, err)
		}
		if end1 {
			continue
		}
		n2, end2, err := s.feed([]byte(body[split:] + "NEXT"))
		if err != nil || !end2 || n1+n2 != len(body) {
			t.Fatalf("split %d: %d+%d of %d, end %v, %v", split, n1, n2, len(body), end2, err)
		}
	}
	for _, bad := range []string{"x\r\n", "\r\n", "5\r\nhelloX\r\n", "1234567890123456\r\n", "0\r\n\rX"} {
		var s chunkState
		if _, _, err := s.feed([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzChunkState: the chunk framing is found the same way whatever the
// reads that bring it.
func FuzzChunkState(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"), 3)
	f.Add([]byte("a;x\nabcdefghij\n0\nT: 1\n\nrest"), 7)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		var whole chunkState
		n, end, err := whole.feed(b)
		var parts chunkState
		split = min(max(split, 0), len(b))
		n1, end1, err1 := parts.feed(b[:split])
		n2, end2, err2 := 0, end1, err1
		if err1 == nil && !end1 {
			n2, end2, err2 = parts.feed(b[split:])
			n2 += split
		} else {
			n2 = n1
		}
		if (err == nil) != (err2 == nil) || (err == nil && (end != end2 || n != n2)) {
			t.Fatalf("whole: %d %v %v; split at %d: %d %v %v", n, end, err, split, n2, end2, err2)
		}
	})
}

// BenchmarkLoop compares the engines over loopback, a 12-byte response
// per request: "serial" is one keep-alive connection (latency), "parallel"
// one connection per RunParallel goroutine (throughput, so ns/op is about
// the CPU a request costs client, proxy and backend together).
func BenchmarkLoop(b *testing.B) {
	for _, engine := range []string{"loop", "fasthttp"} {
		for _, parallel := range []bool{false, true} {
			name := engine + "/serial"
			if parallel {
				name = engine + "/parallel"
			}
			b.Run(name, func(b *testing.B) { benchEngine(b, engine, parallel) })
		}
	}
}

func benchEngine(b *testing.B, engine string, parallel bool) {
	p, addr, _ := startEngine(b, engine)
	// Started after the proxy, so stopped before the leak check.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.WriteString("hello world!") }}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	b.Cleanup(func() { srv.Shutdown(); <-served })
	route(p, "b.example.com", nil, uint32(ln.Addr().(*net.TCPAddr).Port))
	req := []byte("GET /x HTTP/1.1\r\nHost: b.example.com\r\nUser-Agent: bench\r\n\r\n")
	roundTrip := func(c net.Conn, buf []byte) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			return err
		}
		// Read until the 12-byte body that ends the response.
		n := 0
		for !bytes.HasSuffix(buf[:n], []byte("hello world!")) {
			m, err := c.Read(buf[n:])
			if err != nil {
				return err
			}
			n += m
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
			return fmt.Errorf("response %q", buf[:n])
		}
		return nil
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	if parallel {
		b.SetParallelism(8) // 8 connections per core
		b.RunParallel(func(pb *testing.PB) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 4096)
			for pb.Next() {
				if err := roundTrip(c, buf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		rc := dialRaw(b, addr)
		buf := make([]byte, 4096)
		for b.Loop() {
			if err := roundTrip(rc.c, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	// The whole process's CPU: client, proxy and backend alike, so only
	// the difference between the engines is the proxy's.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time, user and system, the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
