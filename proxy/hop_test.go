package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hopRequest carries hop-by-hop and forwarding headers spelled in lower
// and mixed case, as HTTP allows (RFC 9110 5.1).
const hopRequest = "GET / HTTP/1.1\r\nHost: web.example.com\r\n" +
	"connection: keep-alive, x-secret\r\nx-secret: s\r\nkeep-alive: timeout=5\r\nproxy-connection: keep-alive\r\n" +
	"te: trailers\r\ntrailer: X-T\r\nproxy-authorization: Basic Zm9vOmJhcg==\r\n" +
	"x-forwarded-for: 6.6.6.6\r\nX-FORWARDED-PROTO: https\r\nx-forwarded-host: evil.example.com\r\nx-forwarded-port: 1\r\n" +
	"x-kept: yes\r\n\r\n"

// hopBackend is a backend that records the request headers it got (seen)
// and answers with hop-by-hop headers in raw, non-canonical spellings.
func hopBackend(t *testing.T) (port uint32, seen func() map[string][]string) {
	var mu sync.Mutex
	var got map[string][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = map[string][]string{}
		for k, vs := range r.Header {
			got[http.CanonicalHeaderKey(k)] = append(got[http.CanonicalHeaderKey(k)], vs...)
		}
		mu.Unlock()
		// Raw, non-canonical keys: net/http writes them as given.
		w.Header()["keep-alive"] = []string{"timeout=5"}
		w.Header()["proxy-authenticate"] = []string{"Basic"}
		w.Header()["connection"] = []string{"x-hidden"}
		w.Header()["x-hidden"] = []string{"h"}
		w.Header()["x-kept"] = []string{"yes"}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	p, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	return uint32(p), func() map[string][]string { mu.Lock(); defer mu.Unlock(); return got }
}

// checkHop checks the answer to hopRequest and what the backend saw:
// nothing hop-by-hop either way, and X-Forwarded-* the proxy's alone.
func checkHop(t *testing.T, round int, resp *http.Response, body string, seen map[string][]string, proxyPort string) {
	t.Helper()
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("round %d: %d %q", round, resp.StatusCode, body)
	}
	for _, h := range []string{"Keep-Alive", "Proxy-Authenticate", "Connection", "X-Hidden"} {
		if v := resp.Header.Values(h); len(v) > 0 {
			t.Errorf("round %d: response hop-by-hop header %s forwarded: %v", round, h, v)
		}
	}
	if resp.Header.Get("X-Kept") != "yes" {
		t.Errorf("round %d: end-to-end response header lost: %v", round, resp.Header)
	}
	for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Proxy-Authorization", "Connection"} {
		if v := seen[h]; len(v) > 0 {
			t.Errorf("round %d: hop-by-hop request header %s forwarded: %v", round, h, v)
		}
	}
	want := map[string]string{"X-Forwarded-For": "6.6.6.6, 127.0.0.1", "X-Forwarded-Proto": "http",
		"X-Forwarded-Host": "web.example.com", "X-Forwarded-Port": proxyPort, "X-Kept": "yes"}
	for h, v := range want {
		if vs := seen[h]; len(vs) != 1 || vs[0] != v {
			t.Errorf("round %d: backend got %s %q, want exactly %q", round, h, vs, v)
		}
	}
}

// TestHopHeadersAnyCase sends hopRequest twice on one connection (the
// cleaning must not depend on a fresh connection): none of its hop-by-hop
// headers slips through in either direction, and a client cannot spoof
// the X-Forwarded-* headers by their spelling.
func TestHopHeadersAnyCase(t *testing.T) {
	p, base := startProxy(t)
	port, seen := hopBackend(t)
	p.Update(snap(1, task("/web", "web.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "web.example.com"})))
	addr := strings.TrimPrefix(base, "http://")
	_, proxyPort, _ := net.SplitHostPort(addr)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for round := 0; round < 2; round++ {
		fmt.Fprint(c, hopRequest)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		checkHop(t, round, resp, string(body), seen(), proxyPort)
	}
}

// FuzzScanRequest checks scanRequest against a plain reading of the same
// header block: every hop-by-hop or X-Forwarded-* header, in whatever
// spelling, is dropped, and Host and the framing headers never are.
func FuzzScanRequest(f *testing.F) {
	f.Add("Host: a\r\nConnection: keep-alive, X-A\r\nx-a: 1\r\nTE: trailers\r\n\r\n")
	f.Add("host: a\r\nconnection: host, content-length, upgrade\r\nUpgrade: websocket\r\ncontent-length: 0\r\n\r\n")
	f.Add("X-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\nTrailer: X\r\n\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		if code, _ := checkHeaders([]byte(raw)); code != 0 {
			return
		}
		var s hopScan
		scanRequest([]byte(raw), &s)
		dropped := map[string]bool{}
		for i := range s.drop.len() {
			dropped[string(s.drop.at(i))] = true
		}
		eachHeader([]byte(raw), func(name, _ []byte) {
			lower := strings.ToLower(string(name))
			must := false
			for _, h := range append(hopNames[:], forwardedNames[:]...) {
				must = must || lower == h
			}
			if must && !dropped[string(name)] {
				t.Fatalf("%q not dropped from %q", name, raw)
			}
			if (lower == "host" || lower == "content-length" || lower == "transfer-encoding") && dropped[string(name)] {
				t.Fatalf("%q dropped from %q", name, raw)
			}
		})
	})
}

// TestLowercaseFraming: framing headers in lower case, as many servers
// and clients send them, frame the message in both directions.
func TestLowercaseFraming(t *testing.T) {
	p, base := startProxy(t)
	port := tcpBackend(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			switch req.URL.Path {
			case "/chunked":
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body)+3, "got"+string(body))
			default:
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\ngot%s", len(body)+3, body)
			}
		}
	})
	p.Update(snap(1, task("/web", "web.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "web.example.com"})))
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, tc := range []struct{ req, want string }{
		{"POST /length HTTP/1.1\r\nhost: web.example.com\r\ncontent-length: 3\r\n\r\nabc", "gotabc"},
		{"POST /chunked HTTP/1.1\r\nhost: web.example.com\r\ntransfer-encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n", "gotxy"},
		{"GET /length HTTP/1.1\r\nhost: web.example.com\r\n\r\n", "got"},
	} {
		fmt.Fprint(c, tc.req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.req, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != tc.want {
			t.Fatalf("%q: %d %q, want %q", tc.req, resp.StatusCode, body, tc.want)
		}
	}
}

func TestTrimOWS(t *testing.T) {
	for in, want := range map[string]string{"": "", " \t ": "", "a": "a", " a b\t": "a b", "\ta\t\t": "a", "a\r": "a\r"} {
		if got := string(trimOWS([]byte(in))); got != want {
			t.Errorf("trimOWS(%q) = %q, want %q", in, got, want)
		}
	}
}
