package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/keelhq/keel/snapshot"
)

// do sends one request with a fresh connection and returns the response
// with its body read.
func do(t *testing.T, method, url, host string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestSticky(t *testing.T) {
	p, url := startProxy(t)
	var seen sync.Map
	labels := map[string]string{"HAPROXY_0_VHOST": "s.example.com", "HAPROXY_0_STICKY": "true"}
	var tasks []snapshot.Task
	for i := 0; i < 3; i++ {
		_, port := backend(t, fmt.Sprintf("b%d", i), &seen)
		tasks = append(tasks, task("/s", fmt.Sprintf("s.%d", i), "127.0.0.1", []uint32{port}, nil, labels))
	}
	p.Update(snap(1, tasks...))
	resp, first := do(t, "GET", url+"/", "s.example.com", nil)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "mesosphere_server_id" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value == "" || cookie.Path != "/" {
		t.Fatalf("no sticky cookie: %v", resp.Header)
	}
	hdr := map[string]string{"Cookie": "other=1; mesosphere_server_id=" + cookie.Value}
	for i := 0; i < 10; i++ {
		resp, body := do(t, "GET", url+"/", "s.example.com", hdr)
		if body != first {
			t.Fatalf("request %d with the cookie went to %s, not %s", i, body, first)
		}
		if len(resp.Cookies()) != 0 {
			t.Fatalf("cookie set again: %v", resp.Cookies())
		}
	}
	h, _ := seen.Load(first)
	if got := h.(http.Header).Get("Cookie"); got != "other=1" {
		t.Fatalf("backend saw Cookie %q, want only the client's own cookie", got)
	}
	// An unknown cookie and the cookie of a backend that left the table
	// are replaced.
	var rest []snapshot.Task
	for i, tk := range tasks {
		if fmt.Sprintf("b%d", i) != first {
			rest = append(rest, tk)
		}
	}
	p.Update(snap(2, rest...))
	for _, v := range []string{"nonsense", cookie.Value} {
		resp, body := do(t, "GET", url+"/", "s.example.com", map[string]string{"Cookie": "mesosphere_server_id=" + v})
		if body == first || resp.StatusCode != 200 || len(resp.Cookies()) != 1 || resp.Cookies()[0].Value == cookie.Value {
			t.Fatalf("cookie %q: %d from %s, cookies %v", v, resp.StatusCode, body, resp.Cookies())
		}
	}
}

func TestAuth(t *testing.T) {
	p, url := startProxy(t)
	defer func() {
		// The admin API never shows the password or its hash.
		mux := http.NewServeMux()
		p.RegisterAdmin(mux)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/routes", nil))
		if body := rec.Body.String(); rec.Code != 200 || strings.Contains(body, "plain") || strings.Contains(body, "$2a$") || !strings.Contains(body, "(redacted)") {
			t.Errorf("/v1/routes: %d %s", rec.Code, body)
		}
	}()
	_, port := backend(t, "b0", nil)
	hash, err := bcrypt.GenerateFromPassword([]byte("open sesame"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p.Update(snap(1,
		task("/b", "b.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "b.example.com", "HAPROXY_0_AUTH": "Staff only:ali:" + string(hash)}),
		task("/p", "p.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "p.example.com", "HAPROXY_0_AUTH": "R:bob:plain"})))
	for _, c := range []struct {
		host, user, pass string
		want             int
	}{
		{"b.example.com", "", "", 401}, {"b.example.com", "ali", "wrong", 401}, {"b.example.com", "ali", "open sesame", 200},
		{"p.example.com", "bob", "plain", 200}, {"p.example.com", "bob", "plainx", 401},
	} {
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.Host = c.host
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Fatalf("%s %s:%s -> %d, want %d", c.host, c.user, c.pass, resp.StatusCode, c.want)
		}
		if c.want == 401 && c.host == "b.example.com" && resp.Header.Get("WWW-Authenticate") != `Basic realm="Staff only"` {
			t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestWeightsRewriteLimits(t *testing.T) {
	p, url := startProxy(t)
	_, stable := backend(t, "stable", nil)
	_, canary := backend(t, "canary", nil)
	_, dark := backend(t, "dark", nil)
	var mu sync.Mutex
	var uris []string
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.RequestURI)
		mu.Unlock()
		switch r.URL.Path {
		case "/v2/block":
			arrived <- struct{}{}
			<-release
		case "/v2/slow":
			select {
			case <-release:
			case <-time.After(2 * time.Second):
			}
		}
		io.WriteString(w, "rec")
	}))
	defer rec.Close()
	recPort, _ := strconv.Atoi(rec.URL[strings.LastIndexByte(rec.URL, ':')+1:])
	vh := func(kv ...string) map[string]string {
		m := map[string]string{"HAPROXY_0_VHOST": "w.example.com"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	p.Update(snap(1,
		task("/stable", "st.1", "127.0.0.1", []uint32{stable}, nil, vh("KEEL_0_WEIGHT", "3")),
		task("/canary", "ca.1", "127.0.0.1", []uint32{canary}, nil, vh()),
		task("/dark", "da.1", "127.0.0.1", []uint32{dark}, nil, vh("KEEL_0_WEIGHT", "0")),
		task("/rw", "rw.1", "127.0.0.1", []uint32{uint32(recPort)}, nil, vh("HAPROXY_0_PATH", "/api", "KEEL_0_PATH_REWRITE", "/api:/v2",
			"KEEL_0_MAX_CONNS", "1", "KEEL_0_TIMEOUT_RESPONSE", "300ms")),
		task("/bad", "bad.1", "127.0.0.1", []uint32{uint32(recPort)}, nil, vh("HAPROXY_0_PATH", "/bad", "KEEL_0_WEIGHT", "heavy"))))

	// Canary: 3 to 1, the weight-0 app gets nothing.
	got := map[string]int{}
	for i := 0; i < 40; i++ {
		_, body := get(t, url+"/", "w.example.com", nil)
		got[body]++
	}
	if got["stable"] != 30 || got["canary"] != 10 || len(got) != 2 {
		t.Fatalf("weights: %v", got)
	}
	// A bad label costs only its own route: /bad falls through to "/".
	if _, body := get(t, url+"/bad", "w.example.com", nil); body == "rec" {
		t.Fatal("route with a bad weight label still served")
	}
	if errs := *p.errs.Load(); len(errs) != 1 || errs[0].Label != "KEEL_0_WEIGHT" || errs[0].App != "/bad" {
		t.Fatalf("label errors: %+v", errs)
	}
	// Path rewrite keeps the query.
	if code, body := get(t, url+"/api/users?id=7&x", "w.example.com", nil); code != 200 || body != "rec" {
		t.Fatalf("rewrite: %d %q", code, body)
	}
	if code, _ := get(t, url+"/api", "w.example.com", nil); code != 200 {
		t.Fatalf("rewrite of the bare prefix: %d", code)
	}
	mu.Lock()
	if want := []string{"/v2/users?id=7&x", "/v2"}; fmt.Sprint(uris) != fmt.Sprint(want) {
		t.Fatalf("backend saw %v, want %v", uris, want)
	}
	mu.Unlock()
	// Response timeout: 504.
	if code, _ := get(t, url+"/api/slow", "w.example.com", nil); code != 504 {
		t.Fatalf("timeout: %d", code)
	}
	// Max conns: the second concurrent request gets 503, and once the
	// first finishes the route takes requests again.
	first := make(chan int, 1)
	go func() {
		resp, _ := do(t, "POST", url+"/api/block", "w.example.com", nil)
		first <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("first request never arrived")
	}
	if resp, _ := do(t, "GET", url+"/api/x", "w.example.com", nil); resp.StatusCode != 503 {
		t.Fatalf("over max conns: %d", resp.StatusCode)
	}
	close(release)
	if code := <-first; code != 200 {
		t.Fatalf("first request: %d", code)
	}
	if resp, _ := do(t, "GET", url+"/api/x", "w.example.com", nil); resp.StatusCode != 200 {
		t.Fatalf("after the first finished: %d", resp.StatusCode)
	}
}

func TestRetries(t *testing.T) {
	p, url := startProxy(t)
	_, live := backend(t, "live", nil)
	for _, c := range []struct {
		retries string
		want502 bool
	}{{"0", true}, {"3", false}} {
		labels := map[string]string{"HAPROXY_0_VHOST": "r.example.com", "KEEL_0_RETRIES": c.retries}
		// A new dead port each time, so its health starts clean.
		p.Update(snap(1, task("/r", "r.0", "127.0.0.1", []uint32{freePort(t)}, nil, labels), task("/r", "r.1", "127.0.0.1", []uint32{live}, nil, labels)))
		saw502 := false
		for i := 0; i < 2; i++ {
			if code, _ := get(t, url+"/", "r.example.com", nil); code == 502 {
				saw502 = true
			} else if code != 200 {
				t.Fatalf("retries %s: %d", c.retries, code)
			}
		}
		if saw502 != c.want502 {
			t.Fatalf("retries %s: saw 502 %v, want %v", c.retries, saw502, c.want502)
		}
	}
}
