package proxy

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gen yields n bytes of a pseudo-random pattern whose length (a prime) is
// no buffer's multiple, so a dropped, doubled or misplaced block changes
// the checksum.
type gen struct {
	pat       []byte
	off, left int64
}

func newGen(n int64) *gen {
	pat := make([]byte, 65521)
	r := rand.New(rand.NewChaCha8([32]byte{7}))
	for i := range pat {
		pat[i] = byte(r.Uint32())
	}
	return &gen{pat: pat, left: n}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], g.pat[g.off%int64(len(g.pat)):])
		n += c
		g.off += int64(c)
	}
	g.left -= int64(n)
	return n, nil
}

// sum is the byte count and CRC-32 of r.
func sum(r io.Reader) (int64, uint32, error) {
	h := crc32.NewIEEE()
	n, err := io.Copy(h, r)
	return n, h.Sum32(), err
}

// heapWatch samples the heap in use until stop, which returns its peak
// growth over the heap at the start.
func heapWatch(t *testing.T) (stop func() uint64) {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		return peak.Load()
	}
}

// streamBackend serves GET /download?n=N[&chunked=1] (the generator's N
// bytes, with a Content-Length unless chunked), POST /upload (answers
// "count crc transfer-encoding" of the body it read) and counts the
// connections it accepted.
func streamBackend(t *testing.T) (uint32, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			} else {
				w.(http.Flusher).Flush() // headers out first: no length
			}
			io.Copy(w, newGen(n))
		case "/upload":
			n, crc, err := sum(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d %08x %s", n, crc, strings.Join(r.TransferEncoding, ","))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	return uint32(port), &conns
}

func streamClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true, ResponseHeaderTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

func startStream(t *testing.T) (string, *atomic.Int64, *http.Client) {
	t.Helper()
	p, url := startProxy(t)
	port, conns := streamBackend(t)
	p.Update(snap(1, task("/s", "s.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "s.example.com"})))
	return url, conns, streamClient(t)
}

func expected(n int64) uint32 {
	_, crc, _ := sum(newGen(n))
	return crc
}

const gib = 1 << 30

// maxGrowth is the heap a transfer of any size may add.
const maxGrowth = 64 << 20

func TestStreamDownload(t *testing.T) {
	url, conns, client := startStream(t)
	for _, c := range []struct {
		name    string
		n       int64
		chunked bool
	}{
		{"1GiB length", gib, false},
		{"256MiB chunked", 256 << 20, true},
		{"small chunked", 100, true},
		{"just over small", smallBody + 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			stop := heapWatch(t)
			q := fmt.Sprintf("%s/download?n=%d", url, c.n)
			if c.chunked {
				q += "&chunked=1"
			}
			req, _ := http.NewRequest("GET", q, nil)
			req.Host = "s.example.com"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			n, crc, err := sum(resp.Body)
			resp.Body.Close()
			growth := stop()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, read %d bytes: %v", resp.StatusCode, n, err)
			}
			if n != c.n || crc != expected(c.n) {
				t.Fatalf("got %d bytes crc %08x, want %d crc %08x", n, crc, c.n, expected(c.n))
			}
			if chunked := resp.ContentLength == -1; chunked != c.chunked {
				t.Fatalf("chunked to the client = %v (length %d), want %v", chunked, resp.ContentLength, c.chunked)
			}
			if growth > maxGrowth {
				t.Fatalf("heap grew by %d MiB", growth>>20)
			}
			t.Logf("%d bytes, heap growth %.1f MiB", n, float64(growth)/(1<<20))
		})
	}
	// Every streamed body ended cleanly, so its connection went back to
	// the pool: the backend saw one.
	if n := conns.Load(); n != 1 {
		t.Fatalf("backend accepted %d connections, want 1 (reuse after streamed bodies)", n)
	}
}

func TestStreamUpload(t *testing.T) {
	url, _, client := startStream(t)
	for _, c := range []struct {
		name    string
		n       int64
		chunked bool
		wantTE  string // what the backend saw
	}{
		{"1GiB length", gib, false, ""},
		{"256MiB chunked", 256 << 20, true, "chunked"},
		{"small chunked", 100, true, "chunked"},
		{"just over small", smallBody + 1, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			stop := heapWatch(t)
			var body io.Reader = newGen(c.n)
			if c.chunked {
				body = readerOnly{body} // no length: the client sends chunks
			}
			req, _ := http.NewRequest("POST", url+"/upload", body)
			if !c.chunked {
				req.ContentLength = c.n
			}
			req.Host = "s.example.com"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			growth := stop()
			if want := fmt.Sprintf("%d %08x %s", c.n, expected(c.n), c.wantTE); resp.StatusCode != 200 || string(got) != want {
				t.Fatalf("status %d, backend read %q, want %q", resp.StatusCode, got, want)
			}
			if growth > maxGrowth {
				t.Fatalf("heap grew by %d MiB", growth>>20)
			}
			t.Logf("%d bytes, heap growth %.1f MiB", c.n, float64(growth)/(1<<20))
		})
	}
}

// TestStreamNotBuffered proves that bodies move before they end: the
// first part of a response reaches the client, and the first part of a
// request the backend, while the rest has not been written yet.
func TestStreamNotBuffered(t *testing.T) {
	p, url := startProxy(t)
	release := make(chan struct{})
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			buf := make([]byte, 2*smallBody)
			_, err := io.ReadFull(r.Body, buf)
			got <- fmt.Sprintf("%s %v", buf[:5], err)
			rest, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d", len(rest))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(5+3*smallBody))
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, strings.Repeat("x", 3*smallBody))
	}))
	defer srv.Close()
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	p.Update(snap(1, task("/s", "s.1", "127.0.0.1", []uint32{uint32(port)}, nil, map[string]string{"HAPROXY_0_VHOST": "s.example.com"})))
	client := streamClient(t)

	t.Run("response", func(t *testing.T) {
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.Host = "s.example.com"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
			t.Fatalf("first part %q: %v", first, err)
		}
		close(release)
		rest, err := io.ReadAll(resp.Body)
		if err != nil || len(rest) != 3*smallBody {
			t.Fatalf("rest: %d bytes: %v", len(rest), err)
		}
	})
	t.Run("request", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", url+"/", pr)
		// fasthttp reads smallBody ahead before the handler runs: the
		// first part is more than that.
		req.ContentLength = 3 * smallBody
		req.Host = "s.example.com"
		type result struct {
			body string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				done <- result{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- result{string(b), err}
		}()
		if _, err := io.WriteString(pw, "first"+strings.Repeat("y", 2*smallBody-5)); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != "first <nil>" {
				t.Fatalf("backend read %q", s)
			}
		case <-time.After(10 * time.Second):
			pw.Close()
			t.Fatal("the backend did not get the first part before the rest was sent: the proxy buffers")
		}
		io.WriteString(pw, strings.Repeat("y", smallBody))
		pw.Close()
		r := <-done
		if r.err != nil || r.body != strconv.Itoa(smallBody) {
			t.Fatalf("response %q: %v", r.body, r.err)
		}
	})
}

// TestStreamBadChunk sends a chunked body whose second chunk is malformed
// once the first has streamed: the client gets 400, and the backend is
// not blamed for it.
func TestStreamBadChunk(t *testing.T) {
	p, url := startProxy(t)
	port, _ := streamBackend(t)
	p.Update(snap(1, task("/s", "s.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "s.example.com"})))
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	chunk := strings.Repeat("z", 2*smallBody)
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: s.example.com\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\nzz\r\nabc\r\n0\r\n\r\n", len(chunk), chunk)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if b := p.table.Load().routes[0].Backends[0]; b.client.health.dirty.Load() {
		t.Fatal("backend blamed for the client's body: a failure was recorded")
	}
}

// TestStreamConcurrent mixes streamed and small bodies, both ways, on
// shared keep-alive connections: every body arrives intact.
func TestStreamConcurrent(t *testing.T) {
	url, _, client := startStream(t)
	type job struct {
		n       int64
		upload  bool
		chunked bool
	}
	jobs := []job{{1 << 20, false, false}, {100, false, false}, {300 << 10, false, true}, {1 << 20, true, false},
		{50, true, true}, {200 << 10, true, true}, {smallBody, false, false}, {smallBody + 1, true, false}}
	want := map[int64]uint32{}
	for _, j := range jobs {
		want[j.n] = expected(j.n)
	}
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		go func() {
			for i := 0; i < 12; i++ {
				j := jobs[(w+i)%len(jobs)]
				var req *http.Request
				if j.upload {
					var body io.Reader = newGen(j.n)
					if j.chunked {
						body = readerOnly{body}
					}
					req, _ = http.NewRequest("POST", url+"/upload", body)
					if !j.chunked {
						req.ContentLength = j.n
					}
				} else {
					q := fmt.Sprintf("%s/download?n=%d", url, j.n)
					if j.chunked {
						q += "&chunked=1"
					}
					req, _ = http.NewRequest("GET", q, nil)
				}
				req.Host = "s.example.com"
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				var got string
				if j.upload {
					b, err := io.ReadAll(resp.Body)
					got = fmt.Sprintf("%s %v", b, err) // "count crc transfer-encoding"
				} else {
					n, crc, err := sum(resp.Body)
					got = fmt.Sprintf("%d %08x %v", n, crc, err)
				}
				resp.Body.Close()
				wantS := fmt.Sprintf("%d %08x <nil>", j.n, want[j.n])
				if j.upload {
					te := ""
					if j.chunked {
						te = "chunked" // a chunked request body streams as it came
					}
					wantS = fmt.Sprintf("%d %08x %s <nil>", j.n, want[j.n], te)
				}
				if got != wantS || resp.StatusCode != 200 {
					errs <- fmt.Errorf("%+v: status %d, got %q, want %q", j, resp.StatusCode, got, wantS)
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < 8; w++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestStreamTruncatedResponse has a backend close inside a streamed body:
// the client's connection is cut (it cannot tell a short body from a whole
// one otherwise), and the next request gets a new backend connection.
func TestStreamTruncatedResponse(t *testing.T) {
	p, url := startProxy(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err == nil {
				if i == 0 {
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 1<<20, strings.Repeat("t", 100<<10))
				} else {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-served })
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	p.Update(snap(1, task("/s", "s.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "s.example.com"})))
	client := streamClient(t)
	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Host = "s.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) >= 1<<20 {
		t.Fatalf("read %d bytes, err %v: want a cut connection", len(b), err)
	}
	if code, body := get(t, url+"/", "s.example.com", nil); code != 200 || body != "ok" {
		t.Fatalf("after a truncated body: status %d %q", code, body)
	}
}

// TestStreamHead: a HEAD answer announcing a large body has none, and its
// connection goes back to the pool.
func TestStreamHead(t *testing.T) {
	url, conns, client := startStream(t)
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("HEAD", fmt.Sprintf("%s/download?n=%d", url, 1<<20), nil)
		req.Host = "s.example.com"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 1<<20 {
			t.Fatalf("status %d, length %d", resp.StatusCode, resp.ContentLength)
		}
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/download?n=%d", url, 1<<20), nil)
	req.Host = "s.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, crc, err := sum(resp.Body)
	resp.Body.Close()
	if err != nil || n != 1<<20 || crc != expected(1<<20) {
		t.Fatalf("GET after HEAD: %d bytes crc %08x: %v", n, crc, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("backend accepted %d connections, want 1", n)
	}
}

// TestStreamCounts: a response still streaming counts as in progress for
// KEEL_{n}_MAX_CONNS and for the backend's in-flight count (leastconn)
// until its last byte.
func TestStreamCounts(t *testing.T) {
	p, url := startProxy(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			io.WriteString(w, "quick")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(5+2*smallBody))
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, strings.Repeat("x", 2*smallBody))
	}))
	defer srv.Close()
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	p.Update(snap(1, task("/s", "s.1", "127.0.0.1", []uint32{uint32(port)}, nil,
		map[string]string{"HAPROXY_0_VHOST": "s.example.com", "KEEL_0_MAX_CONNS": "1"})))
	client := streamClient(t)
	inflight := func() int64 { return p.table.Load().routes[0].Backends[0].client.inflight.Load() }

	req, _ := http.NewRequest("GET", url+"/", nil)
	req.Host = "s.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, url+"/quick", "s.example.com", nil); code != 503 {
		t.Fatalf("second request while the first streams: %d %q, want 503", code, body)
	}
	if n := inflight(); n != 1 {
		t.Fatalf("in flight while streaming: %d, want 1", n)
	}
	close(release)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, url+"/quick", "s.example.com", nil)
		if code == 200 && inflight() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the stream ended: status %d, in flight %d", code, inflight())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
