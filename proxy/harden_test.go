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

	"github.com/prometheus/client_golang/prometheus"
)

func TestCheckHeaders(t *testing.T) {
	many := strings.Repeat("X-A: 1\r\n", maxHeaderLines)
	for _, c := range []struct {
		name, raw string
		code      int
	}{
		{"plain", "Host: a\r\nX-A: 1\r\n\r\n", 0},
		{"no headers", "", 0},
		{"bare LF lines", "Host: a\nX-A: 1\n\n", 0},
		{"identical duplicate length", "Content-Length: 4\r\nContent-Length: 04\r\n\r\n", 0},
		{"identical length list", "Content-Length: 4, 4\r\n\r\n", 0},
		{"chunked", "Transfer-Encoding: Chunked\r\n\r\n", 0},
		{"tab in a value", "X-A: a\tb\r\n\r\n", 0},
		{"100 lines", many + "\r\n", 0},
		{"101 lines", many + "X-B: 2\r\n\r\n", 431},
		{"over 16 KiB", "X-A: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", 431},
		{"length and chunked", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"chunked and length", "transfer-encoding: chunked\r\ncontent-length: 4\r\n\r\n", 400},
		{"conflicting lengths", "Content-Length: 4\r\nContent-Length: 5\r\n\r\n", 400},
		{"conflicting length list", "Content-Length: 4, 5\r\n\r\n", 400},
		{"signed length", "Content-Length: +4\r\n\r\n", 400},
		{"empty length", "Content-Length: \r\n\r\n", 400},
		{"space before colon", "Content-Length : 4\r\n\r\n", 400},
		{"tab before colon", "X-A\t: 1\r\n\r\n", 400},
		{"space in name", "X A: 1\r\n\r\n", 400},
		{"separator in name", "X(A): 1\r\n\r\n", 400},
		{"no colon", "X-A 1\r\n\r\n", 400},
		{"empty name", ": 1\r\n\r\n", 400},
		{"folded", "X-A: 1\r\n 2\r\n\r\n", 400},
		{"NUL in value", "X-A: a\x00b\r\n\r\n", 400},
		{"CR in value", "X-A: a\rb\r\n\r\n", 400},
		{"unknown coding", "Transfer-Encoding: gzip, chunked\r\n\r\n", 400},
		{"chunked twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"chunked lookalike", "Transfer-Encoding: xchunked\r\n\r\n", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			if code, reason := checkHeaders([]byte(c.raw)); code != c.code {
				t.Fatalf("checkHeaders = %d (%s), want %d", code, reason, c.code)
			}
		})
	}
	raw := []byte("Host: a\r\nContent-Length: 4, 4\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { checkHeaders(raw) }); n != 0 {
		t.Fatalf("checkHeaders allocates %v times", n)
	}
}

// seenRequest is what the differential test's backend received.
type seenRequest struct {
	uri, body string
	header    http.Header
}

// TestSmuggling sends raw requests over a TCP socket: the ambiguous ones
// must be refused and never reach the backend; the valid ones must reach
// it unchanged.
func TestSmuggling(t *testing.T) {
	p, url := startProxy(t)
	var mu sync.Mutex
	var seen []seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, seenRequest{r.RequestURI, string(b), r.Header.Clone()})
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
	p.Update(snap(1, task("/h", "h.1", "127.0.0.1", []uint32{uint32(port)}, nil, map[string]string{"HAPROXY_0_VHOST": "h.example.com"})))
	addr := strings.TrimPrefix(url, "http://")

	send := func(t *testing.T, raw string) int {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no response: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const host = "Host: h.example.com\r\n"
	big := "X-Big: " + strings.Repeat("b", maxHeaderBytes) + "\r\n"
	reject := []struct {
		name, raw string
		code      int
	}{
		{"length and chunked", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunked and length", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n", 400},
		{"conflicting lengths", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400},
		// Stricter than RFC 9110 allows (fasthttp's parser refuses it), and safe.
		{"identical duplicate lengths", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"conflicting length list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 4, 5\r\n\r\nabcde", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
		{"overflowing chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400},
		{"negative chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n", 400},
		{"space before colon", "POST / HTTP/1.1\r\n" + host + "Content-Length : 4\r\n\r\nabcd", 400},
		{"space before colon, other header", "GET / HTTP/1.1\r\n" + host + "X-Foo : bar\r\n\r\n", 400},
		{"bad header name", "GET / HTTP/1.1\r\n" + host + "X(Foo): bar\r\n\r\n", 400},
		{"space in header name", "GET / HTTP/1.1\r\n" + host + "X Foo: bar\r\n\r\n", 400},
		{"folded header", "GET / HTTP/1.1\r\n" + host + "X-Foo: bar\r\n baz\r\n\r\n", 400},
		{"unknown transfer coding", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunked lookalike", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"header over 16 KiB", "GET / HTTP/1.1\r\n" + host + big + "\r\n", 431},
		{"101 header lines", "GET / HTTP/1.1\r\n" + host + strings.Repeat("X-N: 1\r\n", 100) + "\r\n", 431},
	}
	for _, c := range reject {
		t.Run("reject/"+c.name, func(t *testing.T) {
			mu.Lock()
			before := len(seen)
			mu.Unlock()
			ours := rejectedTotal(t, p)
			if code := send(t, c.raw); code != c.code {
				t.Fatalf("status %d, want %d", code, c.code)
			}
			t.Logf("refused by checkHeaders: %v", rejectedTotal(t, p) > ours)
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != before {
				t.Fatalf("forwarded to the backend: %+v", seen[before:])
			}
		})
	}
	// Some of these fasthttp's parser refuses by itself; the rest (length
	// with chunked, folding, the limits, ...) only checkHeaders catches.
	if rejectedTotal(t, p) == 0 {
		t.Fatal("checkHeaders refused nothing on the live listener: RawHeaders not seen?")
	}
	pass := []struct {
		name, raw string
		want      seenRequest // header: only the names listed are compared
	}{
		{"plain get", "GET /p?q=1 HTTP/1.1\r\n" + host + "\r\n", seenRequest{uri: "/p?q=1"}},
		{"encoded path and query", "GET /a%20b/..%2fc?x=%41&y HTTP/1.1\r\n" + host + "\r\n", seenRequest{uri: "/a%20b/..%2fc?x=%41&y"}},
		{"content length", "POST /post HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", seenRequest{uri: "/post", body: "hello"}},
		{"chunked", "POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n", seenRequest{uri: "/c", body: "wikipedia"}},
		{"header names and values", "GET / HTTP/1.1\r\n" + host + "x-lower: a \t b\r\nX-UPPER: B\r\nX-Dup: 1\r\nX-Dup: 2\r\nX-Empty:\r\n\r\n",
			seenRequest{uri: "/", header: http.Header{"X-Lower": {"a \t b"}, "X-Upper": {"B"}, "X-Dup": {"1", "2"}, "X-Empty": {""}}}},
		{"headers just under the limits", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("b", 15<<10) + "\r\n" + strings.Repeat("X-N: 1\r\n", 90) + "\r\n",
			seenRequest{uri: "/", header: http.Header{"X-Big": {strings.Repeat("b", 15<<10)}}}},
	}
	for _, c := range pass {
		t.Run("pass/"+c.name, func(t *testing.T) {
			mu.Lock()
			before := len(seen)
			mu.Unlock()
			if code := send(t, c.raw); code != 200 {
				t.Fatalf("status %d", code)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != before+1 {
				t.Fatalf("backend got %d requests, want 1", len(seen)-before)
			}
			got := seen[before]
			if got.uri != c.want.uri || got.body != c.want.body {
				t.Fatalf("backend saw %q %q, want %q %q", got.uri, got.body, c.want.uri, c.want.body)
			}
			for k, v := range c.want.header {
				if fmt.Sprint(got.header[k]) != fmt.Sprint(v) {
					t.Fatalf("header %s: %q, want %q", k, got.header[k], v)
				}
			}
		})
	}
}

func FuzzCheckHeaders(f *testing.F) {
	for _, seed := range []string{"Host: a\r\n\r\n", "Content-Length: 4, 4\r\n\r\n", "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
		"X A: 1\r\n\r\n", "X-A: 1\r\n 2\r\n\r\n", "\n\n", ":\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		code, reason := checkHeaders([]byte(raw))
		if (code == 0) != (reason == "") || (code != 0 && code != 400 && code != 431) {
			t.Fatalf("checkHeaders(%q) = %d %q", raw, code, reason)
		}
		if code != 0 {
			return
		}
		// What passes has the shape of a header block: "name: value" lines
		// with a token name and no control characters, up to a blank line.
		for _, line := range strings.Split(raw, "\n") {
			line = strings.TrimSuffix(line, "\r")
			if line == "" {
				break
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok || name == "" || strings.ContainsAny(name, " \t()<>@,;\\\"/[]?={}") || strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
				t.Fatalf("checkHeaders accepted line %q of %q", line, raw)
			}
		}
	})
}

func rejectedTotal(t *testing.T, p *Proxy) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.metrics.rejected)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}
