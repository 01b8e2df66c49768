package webui

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keelhq/keel/internal/leakcheck"
)

func TestHandler(t *testing.T) {
	for _, c := range []struct {
		page       Page
		path, want string
		code       int
	}{
		{Cluster, "/", "Keel cluster", 200},
		{Apps, "/index.html", "Keel apps", 200},
		{Gateway, "/", "Keel gateway", 200},
		{Cluster, "/keel.js", "export async function getJSON", 200},
		{Cluster, "/cluster.js", "SUBSCRIBE", 200},
		{Apps, "/apps.js", "/v2/events", 200},
		{Gateway, "/gateway.js", "/v1/routes", 200},
		{Cluster, "/keel.css", "--accent", 200},
		{Cluster, "/apps.html", "", 404},
		{Cluster, "/nope.js", "", 404},
		{Cluster, "/../webui.go", "", 404},
		{Cluster, "/static/keel.js", "", 404},
		{Apps, "/agents/x/state", "", 404}, // the relay is the cluster page's only
		{Cluster, "/agents/x/files/download", "", 404},
	} {
		t.Run(string(c.page)+c.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(c.page).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != c.code || !strings.Contains(string(body), c.want) {
				t.Errorf("%d %.80q, want %d with %q", rec.Code, body, c.code, c.want)
			}
		})
	}
	rec := httptest.NewRecorder()
	Handler(Cluster).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}

// TestPagesLoadOnlyEmbeddedAssets checks that the pages need nothing but
// the embedded files (no CDN) and that every script they import exists.
func TestPagesLoadOnlyEmbeddedAssets(t *testing.T) {
	ref := regexp.MustCompile(`(?:src|href)="([^"#]+)"|from "([^"]+)"`)
	files, err := fs.Glob(static, "static/*")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, f := range files {
		b, _ := fs.ReadFile(static, f)
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			target := m[1] + m[2]
			if strings.Contains(target, "//") || strings.HasPrefix(target, "http") {
				t.Errorf("%s loads %s from outside", f, target)
				continue
			}
			if !strings.HasSuffix(target, ".js") && !strings.HasSuffix(target, ".css") {
				continue
			}
			if _, err := fs.Stat(static, "static/"+strings.TrimPrefix(target, "./")); err != nil {
				t.Errorf("%s refers to missing %s", f, target)
			}
		}
	}
}

func TestAgentAddr(t *testing.T) {
	for _, c := range []struct {
		pid, host string
		port      int
		want      string
	}{
		{"slave(1)@10.0.0.5:5051", "a1", 5051, "10.0.0.5:5051"},
		{"slave(1)@10.0.0.5:0", "a1", 0, ""},
		{"", "a1.example", 5051, "a1.example:5051"},
		{"", "a1.example", 0, ""},
		{"", "", 5051, ""},
		{"slave(1)@[::1]:5051", "", 0, "[::1]:5051"},
	} {
		if got := agentAddr(c.pid, c.host, c.port); got != c.want {
			t.Errorf("agentAddr(%q, %q, %d) = %q, want %q", c.pid, c.host, c.port, got, c.want)
		}
	}
}

// TestAgentRelay serves the cluster page next to an operator API that
// lists one agent, and reads that agent's files through the page's
// relay: known agents are reached with the query intact, unknown ones
// and other paths are refused, and the agent list is cached.
func TestAgentRelay(t *testing.T) {
	leakcheck.Check(t)
	var agentHits atomic.Int32
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agentHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/files/read":
			if r.URL.Query().Get("offset") != "7" {
				w.WriteHeader(http.StatusBadRequest)
			}
			fmt.Fprintf(w, `{"data":"hello","offset":%s}`, r.URL.Query().Get("offset"))
		case "/files/browse":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"no such file or directory"}`)
		default:
			io.WriteString(w, `{"id":"S1"}`)
		}
	}))
	defer agent.Close()
	var listed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Type string }
		if json.NewDecoder(r.Body).Decode(&req); req.Type != "GET_AGENTS" {
			http.Error(w, "unexpected "+req.Type, http.StatusBadRequest)
			return
		}
		listed.Add(1)
		addr := strings.TrimPrefix(agent.URL, "http://")
		fmt.Fprintf(w, `{"type":"GET_AGENTS","get_agents":{"agents":[
			{"agent_info":{"id":{"value":"S1"},"hostname":"localhost","port":1},"pid":"slave(1)@%s"},
			{"agent_info":{"id":{"value":"S2"},"hostname":"localhost","port":0},"pid":"slave(1)@127.0.0.1:0"}]}}`, addr)
	})
	mux.Handle("/", Handler(Cluster))
	master := httptest.NewServer(mux)
	defer master.Close()
	client := master.Client()

	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/agents/S1/files/read?path=x%2Fstdout&offset=7&length=10", 200, `"offset":7`},
		{"/agents/S1/files/browse?path=nope", 404, "no such file"},
		{"/agents/S1/state", 200, `"id":"S1"`},
		{"/agents/S2/state", 404, "serves no HTTP endpoints"},
		{"/agents/S9/state", 404, "unknown agent"},
		{"/agents/S1/files/download?path=x", 404, ""},
		{"/agents/S1/../../api/v1", 404, ""},
		{"/agents//state", 404, ""},
	} {
		t.Run(c.path, func(t *testing.T) {
			resp, err := client.Get(master.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code || !strings.Contains(string(body), c.want) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, body, c.code, c.want)
			}
		})
	}
	if n := agentHits.Load(); n != 3 {
		t.Errorf("the agent got %d requests, want 3", n)
	}
	// One list for the known agents; the unknown ones within a second of
	// it ask again at most once.
	if n := listed.Load(); n < 1 || n > 2 {
		t.Errorf("GET_AGENTS asked %d times, want 1 or 2", n)
	}
}

// TestAgentRelayMasterDown answers 502 when the master cannot be asked.
func TestAgentRelayMasterDown(t *testing.T) {
	leakcheck.Check(t)
	r := newAgentRelay()
	r.master = func(*http.Request) (string, error) { return "http://127.0.0.1:1", nil }
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/agents/S1/state", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "GET_AGENTS") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	r.master = localMaster
	rec = httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/agents/S1/state", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("without a local address: %d %s", rec.Code, rec.Body)
	}
}
