package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/leakcheck"
)

// bigBody is 1 MiB that is not periodic in any buffer size, so a body
// cut or shifted anywhere compares unequal.
var bigBody = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}()

const smallBody = "hello relay\n" // 12 bytes, the keepalive case's size

// relayEnv is a net/http backend on loopback and the relay in front of it.
type relayEnv struct {
	addr            string // the relay's
	opened, closed  atomic.Int64
	backendRequests atomic.Int64
}

// startRelay starts a backend and the relay in-process; both stop when
// the test ends, and the test fails if the relay's run returns an error.
func startRelay(t *testing.T) *relayEnv {
	t.Helper()
	env := &relayEnv{}
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		env.backendRequests.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(smallBody)))
		io.WriteString(w, smallBody)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		env.backendRequests.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(bigBody)))
		w.Write(bigBody)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		env.backendRequests.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	mux.HandleFunc("/nolength", func(w http.ResponseWriter, r *http.Request) {
		env.backendRequests.Add(1)
		io.WriteString(w, smallBody)
		w.(http.Flusher).Flush() // chunked: no Content-Length
	})
	backend := httptest.NewUnstartedServer(mux)
	backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			env.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			env.closed.Add(1)
		}
	}
	backend.Start()
	t.Cleanup(backend.Close)

	r, err := newRelay("127.0.0.1:0", []string{backend.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	env.addr = r.addr
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("relay: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("relay did not stop within 10s of its context's end")
		}
	})
	return env
}

// client is an HTTP client through the relay that keeps at most one
// connection.
func (env *relayEnv) client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches path through the relay and checks status and body.
func get(c *http.Client, addr, method, path string, body []byte, want []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		return fmt.Errorf("%s %s: status %d, %d body bytes (want 200, %d bytes, equal)", method, path, resp.StatusCode, len(got), len(want))
	}
	return nil
}

// dial opens a raw connection to the relay with a deadline for the test.
func (env *relayEnv) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", env.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// waitFor polls cond until it holds or 10 seconds have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelay(t *testing.T) {
	leakcheck.Check(t)

	t.Run("keep-alive", func(t *testing.T) {
		env := startRelay(t)
		c := env.client(t)
		for i := range 200 {
			path, want := "/small", []byte(smallBody)
			if i%20 == 19 {
				path, want = "/big", bigBody
			}
			if err := get(c, env.addr, "GET", path, nil, want); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		// A HEAD response has a Content-Length but no body: the next
		// response must still be found where it starts.
		if err := get(c, env.addr, "HEAD", "/big", nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := get(c, env.addr, "GET", "/small", nil, []byte(smallBody)); err != nil {
			t.Fatal(err)
		}
		if n, reqs := env.opened.Load(), env.backendRequests.Load(); n != 1 || reqs != 202 {
			t.Fatalf("backend saw %d connections and %d requests, want 1 and 202", n, reqs)
		}
	})

	t.Run("concurrent clients", func(t *testing.T) {
		env := startRelay(t)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for w := range 2 {
			c := env.client(t)
			wg.Go(func() {
				for i := range 50 {
					path, want := "/small", []byte(smallBody)
					if (i+w)%5 == 0 {
						path, want = "/big", bigBody
					}
					if err := get(c, env.addr, "GET", path, nil, want); err != nil {
						errs <- fmt.Errorf("client %d, request %d: %w", w, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := env.opened.Load(); n != 2 {
			t.Fatalf("backend saw %d connections, want 2 (one per client)", n)
		}
	})

	t.Run("request body", func(t *testing.T) {
		env := startRelay(t)
		c := env.client(t)
		large := bigBody[:200<<10] // larger than both of a pair's buffers
		for _, body := range [][]byte{[]byte("hello"), large, []byte("x")} {
			if err := get(c, env.addr, "POST", "/echo", body, body); err != nil {
				t.Fatal(err)
			}
		}
		if err := get(c, env.addr, "GET", "/small", nil, []byte(smallBody)); err != nil {
			t.Fatal(err)
		}
		if n := env.opened.Load(); n != 1 {
			t.Fatalf("backend saw %d connections, want 1", n)
		}
	})

	t.Run("client leaves mid-response", func(t *testing.T) {
		env := startRelay(t)
		for _, reset := range []bool{false, true} {
			c := env.dial(t)
			if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: bench.local\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			if reset {
				c.SetLinger(0) // close with RST, as a killed client does
			}
			c.Close()
		}
		// The relay closes each backend connection with its client.
		waitFor(t, "the relay to close both backend connections", func() bool {
			return env.opened.Load() == 2 && env.closed.Load() == 2
		})
		// And serves the next client.
		c := env.client(t)
		for range 3 {
			if err := get(c, env.addr, "GET", "/big", nil, bigBody); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("pipelined", func(t *testing.T) {
		env := startRelay(t)
		c := env.dial(t)
		reqs := "GET /small HTTP/1.1\r\nHost: a\r\n\r\n" +
			"HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n" +
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
			"GET /big HTTP/1.1\r\nHost: a\r\n\r\n"
		// In pieces that cut heads and a body, to be reassembled.
		for _, piece := range []string{reqs[:10], reqs[10:40], reqs[40:100], reqs[100:]} {
			if _, err := io.WriteString(c, piece); err != nil {
				t.Fatal(err)
			}
		}
		br := bufio.NewReader(c)
		for _, want := range []struct {
			method string
			body   []byte
		}{{"GET", []byte(smallBody)}, {"HEAD", nil}, {"POST", []byte("hello")}, {"GET", bigBody}} {
			resp, err := http.ReadResponse(br, &http.Request{Method: want.method})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want.body) {
				t.Fatalf("%s: status %d, %d bytes, %v", want.method, resp.StatusCode, len(got), err)
			}
		}
	})

	t.Run("half-close", func(t *testing.T) {
		env := startRelay(t)
		c := env.dial(t)
		if _, err := io.WriteString(c, "GET /small HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || string(got) != smallBody {
			t.Fatalf("after half-close: %q, %v", got, err)
		}
		waitFor(t, "the relay to close the backend connection", func() bool { return env.closed.Load() == 1 })
	})

	t.Run("unsupported messages close the connection", func(t *testing.T) {
		env := startRelay(t)
		for _, req := range []string{
			"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			"GET /small HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
			"GET /nolength HTTP/1.1\r\nHost: a\r\n\r\n", // the response is chunked
			"GET /" + strings.Repeat("a", relayRequestBuffer) + " HTTP/1.1\r\n\r\n",
		} {
			c := env.dial(t)
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			// A reset is a close too: the relay may close before reading all
			// of a request too large for it.
			n, err := io.Copy(io.Discard, c)
			if n != 0 || (err != nil && !isReset(err)) {
				t.Fatalf("%.40q: read %d bytes, %v; want the connection closed with nothing relayed", req, n, err)
			}
		}
		if err := get(env.client(t), env.addr, "GET", "/small", nil, []byte(smallBody)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRelayStops checks that the relay's sockets are closed when it stops.
func TestRelayStops(t *testing.T) {
	leakcheck.Check(t)
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	r, err := newRelay("127.0.0.1:0", []string{backend.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.run(ctx) }()
	c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The relay has paired the client once the backend accepts.
	bc, err := backend.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, net.ErrClosed) && !isReset(err)) {
		t.Fatalf("client read after the relay stopped: %d, %v", n, err)
	}
	if c, err := net.DialTimeout("tcp", r.addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the relay's port still accepts after it stopped")
	}
	if _, err := newRelay("127.0.0.1:0", nil); err == nil {
		t.Fatal("a relay without backends was accepted")
	}
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		request bool
		want    head
		err     error
	}{
		{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET", true, head{n: 27, length: -1}, nil},
		{"head", "HEAD /x HTTP/1.1\r\n\r\n", true, head{n: 20, length: -1, head: true}, nil},
		{"post", "POST / HTTP/1.1\r\ncontent-LENGTH:  42 \r\n\r\n", true, head{n: 41, length: 42}, nil},
		{"incomplete", "GET / HTTP/1.1\r\nHost: a\r\n", true, head{length: -1}, nil},
		{"chunked request", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", true, head{}, errTransferEncoding},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", true, head{}, errBadHead},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", true, head{}, errBadHead},
		{"folded", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", true, head{}, errBadHead},
		{"no method", " / HTTP/1.1\r\n\r\n", true, head{}, errBadHead},
		{"response", "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello", false, head{n: 39, length: 12, status: 200}, nil},
		{"no reason", "HTTP/1.1 204\r\n\r\n", false, head{n: 16, length: -1, status: 204}, nil},
		{"continue", "HTTP/1.1 100 Continue\r\n\r\n", false, head{n: 25, length: -1, status: 100}, nil},
		{"chunked response", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, head{}, errTransferEncoding},
		{"bad status", "HTTP/1.1 2x0 OK\r\n\r\n", false, head{}, errBadHead},
		{"not http", "ICY 200 OK\r\n\r\n", false, head{}, errBadHead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseHead([]byte(tc.in), tc.request)
			if err != tc.err {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && h != tc.want {
				t.Fatalf("parsed %+v, want %+v", h, tc.want)
			}
		})
	}
}

// TestRelayAllocs checks that relaying a request and its response through
// a pair's buffers allocates nothing: the parser and the per-pair state
// machine, without the sockets.
func TestRelayAllocs(t *testing.T) {
	req := []byte("GET / HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: wrk\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nServer: fasthttp\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello relay\n")
	r := &relay{}
	p := r.get()
	allocs := testing.AllocsPerRun(1000, func() {
		p.up.start, p.up.fwd, p.up.end = 0, 0, copy(p.up.buf, req)
		p.down.start, p.down.fwd, p.down.end = 0, 0, copy(p.down.buf, resp)
		if _, err := r.parse(p, &p.up, true); err != nil || p.up.fwd != len(req) || p.pending != 1 {
			t.Fatalf("request: fwd %d, pending %d, %v", p.up.fwd, p.pending, err)
		}
		if _, err := r.parse(p, &p.down, false); err != nil || p.down.fwd != len(resp) || p.pending != 0 {
			t.Fatalf("response: fwd %d, pending %d, %v", p.down.fwd, p.pending, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per request", allocs)
	}
}

// FuzzParseHead checks that no input makes the head parser panic or claim
// more bytes than it was given.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), true)
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 200\r\n:\r\n\r\n"), false)
	f.Fuzz(func(t *testing.T, b []byte, request bool) {
		h, err := parseHead(b, request)
		if h.n < 0 || h.n > len(b) {
			t.Fatalf("head of %d bytes in %d", h.n, len(b))
		}
		if err == nil && h.n > 0 && h.length < -1 {
			t.Fatalf("length %d", h.length)
		}
	})
}

func TestSpecFloor(t *testing.T) {
	all, err := specs("all", options{conns: 50, size: 12, streams: 4, vhostStyle: "map"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range all {
		if s.floor() {
			got = append(got, s.name)
		}
	}
	if want := "keepalive keepalive-c1000 keepalive-16k keepalive-1m"; strings.Join(got, " ") != want {
		t.Fatalf("the floor relay runs in %v, want %s", got, want)
	}
}
