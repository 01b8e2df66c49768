package apps

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFront(t *testing.T) {
	leaderAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+" "+r.URL.RequestURI()+" "+string(b)+" "+r.Header.Get("X-Forwarded-For"))
		w.WriteHeader(http.StatusCreated)
	}))
	defer leaderAPI.Close()
	var leader string
	front := NewFront(func() (string, bool) { return leader, leader != "" })
	srv := httptest.NewServer(front)
	defer srv.Close()

	do := func(method, path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := do("GET", "/v2/apps", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no leader: %d, want 503", resp.StatusCode)
	}
	if resp := do("GET", "/ping", ""); resp.StatusCode != 200 {
		t.Fatalf("ping without leader: %d", resp.StatusCode)
	}
	leader = leaderAPI.URL
	resp := do("POST", "/v2/apps?force=true", `{"id":"/a"}`)
	if seen := resp.Header.Get("X-Seen"); resp.StatusCode != http.StatusCreated || !strings.HasPrefix(seen, `POST /v2/apps?force=true {"id":"/a"} 127.0.0.1`) {
		t.Fatalf("proxied: %d %q", resp.StatusCode, seen)
	}
	// A request another front already proxied is not proxied again.
	req, _ := http.NewRequest("GET", srv.URL+"/v2/apps", nil)
	req.Header.Set(frontHopHeader, "1")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second hop: %v %v, want 503", err, resp)
	}
	front.Lead(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if resp := do("GET", "/v2/apps", ""); resp.StatusCode != http.StatusTeapot {
		t.Fatalf("leading: %d, want the local handler", resp.StatusCode)
	}
	front.Lead(nil)
	if resp := do("GET", "/v2/apps", ""); resp.StatusCode != http.StatusCreated {
		t.Fatalf("standing by again: %d", resp.StatusCode)
	}
	leaderAPI.Close()
	if resp := do("GET", "/v2/apps", ""); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("leader gone: %d, want 502", resp.StatusCode)
	}
}

// A standalone front holds requests until its framework leads.
func TestFrontWaitsForLocal(t *testing.T) {
	front := NewFront(func() (string, bool) { return "", false })
	front.WaitLocal = 5 * time.Second
	srv := httptest.NewServer(front)
	defer srv.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		front.Lead(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	}()
	resp, err := http.Get(srv.URL + "/v2/apps")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("status %d, want the local framework's answer", resp.StatusCode)
	}
}
