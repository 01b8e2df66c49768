package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/snapshot"
)

func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

func startProxy(t *testing.T) (*Proxy, string) {
	t.Helper()
	p, url, _ := startWith(t, nil)
	return p, url
}

// startWith runs a proxy with an HTTP listener, and an HTTPS one too when
// edit sets SSLCertsDir or HTTPSAddr to "auto", and returns the base URLs.
func startWith(t *testing.T, edit func(*Config)) (*Proxy, string, string) {
	t.Helper()
	leakcheck.Check(t)
	cfg := Config{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), ServiceBind: "127.0.0.1", HTTPEngine: os.Getenv("KEEL_PROXY_ENGINE"),
		TCPEngine: os.Getenv("KEEL_PROXY_TCP_ENGINE")}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.HTTPSAddr == "auto" {
		cfg.HTTPSAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	waitListening(t, cfg.HTTPAddr)
	httpsURL := ""
	if cfg.HTTPSAddr != "" {
		waitListening(t, cfg.HTTPSAddr)
		httpsURL = "https://" + cfg.HTTPSAddr
	}
	return p, "http://" + cfg.HTTPAddr, httpsURL
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not listening on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backend is a test HTTP server that names itself and records headers.
func backend(t *testing.T, name string, seen *sync.Map) (*httptest.Server, uint32) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen.Store(name, r.Header.Clone())
		}
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	return srv, uint32(port)
}

func snap(gen uint64, tasks ...snapshot.Task) *snapshot.Snapshot {
	s := snapshot.Empty()
	s.Generation, s.Tasks = gen, tasks
	return s
}

func get(t *testing.T, url, host string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPProxy(t *testing.T) {
	p, url := startProxy(t)
	var seen sync.Map
	labels := map[string]string{"HAPROXY_0_VHOST": "web.example.com"}
	var tasks []snapshot.Task
	for i := 0; i < 3; i++ {
		_, port := backend(t, fmt.Sprintf("b%d", i), &seen)
		tasks = append(tasks, task("/web", fmt.Sprintf("web.%d", i), "127.0.0.1", []uint32{port}, nil, labels))
	}
	p.Update(snap(1, append(tasks, task("/empty", "e.1", "127.0.0.1", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "empty.example.com"}))...))

	got := map[string]int{}
	for i := 0; i < 30; i++ {
		code, body := get(t, url+"/", "web.example.com:8000", map[string]string{"Connection": "keep-alive, X-Secret", "X-Secret": "s", "X-Forwarded-For": "1.2.3.4"})
		if code != 200 {
			t.Fatalf("status %d %q", code, body)
		}
		got[body]++
	}
	if len(got) != 3 || got["b0"] != 10 || got["b1"] != 10 || got["b2"] != 10 {
		t.Fatalf("round robin: %v", got)
	}
	h, _ := seen.Load("b0")
	hdr := h.(http.Header)
	if hdr.Get("X-Secret") != "" || hdr.Get("Connection") != "" {
		t.Fatalf("hop-by-hop headers forwarded: %v", hdr)
	}
	if hdr.Get("X-Forwarded-For") != "1.2.3.4, 127.0.0.1" || hdr.Get("X-Forwarded-Host") != "web.example.com:8000" || hdr.Get("X-Forwarded-Proto") != "http" {
		t.Fatalf("forwarding headers: %v", hdr)
	}
	if code, _ := get(t, url+"/", "nope.example.com", nil); code != 404 {
		t.Fatalf("unknown host: %d", code)
	}
	// A KILLING-like removal: the route drops b2 at once.
	p.Update(snap(2, tasks[0], tasks[1]))
	for i := 0; i < 10; i++ {
		if _, body := get(t, url+"/", "web.example.com", nil); body == "b2" {
			t.Fatal("removed backend still gets requests")
		}
	}
	// The vhost with no routable backend: 503.
	dead := task("/empty", "e.1", "127.0.0.1", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "empty.example.com"})
	dead.State = "TASK_KILLING"
	p.Update(snap(3, tasks[0], dead))
	if code, _ := get(t, url+"/", "empty.example.com", nil); code != 503 {
		t.Fatalf("no backends: %d", code)
	}
	// A request in flight when its backend leaves the table still completes.
	res := make(chan string, 1)
	go func() { _, body := get(t, url+"/slow", "web.example.com", nil); res <- body }()
	time.Sleep(100 * time.Millisecond)
	p.Update(snap(4))
	if body := <-res; body != "b0" && body != "b1" {
		t.Fatalf("in-flight request: %q", body)
	}
	// A dead backend is skipped by one retry.
	deadTask := task("/r", "r.0", "127.0.0.1", []uint32{freePort(t)}, nil, map[string]string{"HAPROXY_0_VHOST": "r.example.com"})
	live := tasks[0]
	live.AppID, live.Labels, live.ID = "/r", deadTask.Labels, "r.1"
	p.Update(snap(5, deadTask, live))
	for i := 0; i < 4; i++ {
		if code, body := get(t, url+"/", "r.example.com", nil); code != 200 || body != "b0" {
			t.Fatalf("retry: %d %q", code, body)
		}
	}
}

// tcpBackend runs serve for every connection to a loopback listener
// (closing the connection after) until the test ends; it returns the port.
func tcpBackend(t *testing.T, serve func(c net.Conn)) uint32 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

func echoServer(t *testing.T) uint32 {
	return tcpBackend(t, func(c net.Conn) {
		b, _ := io.ReadAll(c) // until the client half-closes
		c.Write(append([]byte("echo:"), b...))
	})
}

func TestTCPServicePorts(t *testing.T) {
	p, _ := startProxy(t)
	e := echoServer(t)
	sp1, sp2 := freePort(t), freePort(t)
	a := task("/a", "a.1", "127.0.0.1", []uint32{e}, []uint32{sp1}, nil)
	b := task("/b", "b.1", "127.0.0.1", []uint32{e}, []uint32{sp2}, nil)
	p.Update(snap(1, a, b))

	roundTrip := func(port uint32) (string, error) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.Write([]byte("ping"))
		c.(*net.TCPConn).CloseWrite() // half-close: the reply must still come back
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		out, err := io.ReadAll(c)
		return string(out), err
	}
	if out, err := roundTrip(sp1); err != nil || out != "echo:ping" {
		t.Fatalf("service port: %q %v", out, err)
	}
	// A connection open on b's port while a's port goes away stays up.
	held, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", sp2))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.Write([]byte("held"))
	p.Update(snap(2, b))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sp1), time.Second); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("removed service port still accepts")
		}
		time.Sleep(10 * time.Millisecond)
	}
	held.(*net.TCPConn).CloseWrite()
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if out, _ := io.ReadAll(held); string(out) != "echo:held" {
		t.Fatalf("held connection: %q", out)
	}
	if out, err := roundTrip(sp2); err != nil || out != "echo:ping" {
		t.Fatalf("remaining service port: %q %v", out, err)
	}
}

// TestBackendConnCap: a backend with all its connections busy is passed
// over, and a request with nowhere else to go gets 503; the busy backend
// is neither counted as an error nor ejected. (Both engines: make test runs
// this file with KEEL_PROXY_ENGINE=loop too.)
func TestBackendConnCap(t *testing.T) {
	old := backendMaxConns
	backendMaxConns = 2
	t.Cleanup(func() { backendMaxConns = old })
	p, url := startProxy(t)
	release := make(chan struct{})
	var held sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Done()
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	labels := map[string]string{"HAPROXY_0_VHOST": "cap.example.com"}
	p.Update(snap(1, task("/cap", "cap.1", "127.0.0.1", []uint32{uint32(port)}, nil, labels)))

	held.Add(2)
	done := make(chan string, 2)
	for range 2 {
		go func() {
			code, body := get(t, url+"/hold", "cap.example.com", nil)
			done <- fmt.Sprint(code, " ", body)
		}()
	}
	held.Wait() // both connections are busy
	if code, body := get(t, url+"/", "cap.example.com", nil); code != 503 {
		t.Errorf("third request to a full backend: %d %q, want 503", code, body)
	}
	if b := p.table.Load().routes[0].Backends[0]; b.client.health.dirty.Load() {
		t.Error("the busy backend was counted as failing")
	}
	close(release)
	for range 2 {
		if got := <-done; got != "200 ok" {
			t.Errorf("held request: %s", got)
		}
	}
	if code, body := get(t, url+"/", "cap.example.com", nil); code != 200 || body != "ok" {
		t.Errorf("after the backend freed up: %d %q", code, body)
	}
}
