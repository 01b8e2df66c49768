package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// routesDoc is /v1/routes as a client reads it.
type routesDoc struct {
	Generation uint64 `json:"generation"`
	Routes     []struct {
		App        string `json:"app"`
		Source     string `json:"source"`
		RoutesFile string `json:"routes_file"`
		Listen     string `json:"listen"`
	} `json:"routes"`
	LabelErrors []LabelError `json:"label_errors"`
}

func getRoutes(t *testing.T, base string) routesDoc {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/v1/routes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc routesDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/v1/routes: %d %v", resp.StatusCode, err)
	}
	return doc
}

// TestAdminStaticConflicts: static routes that clash with the cluster or
// with each other, and a routes file refused on reload, are shown on
// /v1/routes among the label errors, and every route says where it came
// from.
func TestAdminStaticConflicts(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := startWith(t, func(c *Config) { c.Registerer = reg })
	mux := http.NewServeMux()
	p.RegisterAdmin(mux)
	admin := httptest.NewServer(mux)
	t.Cleanup(admin.Close)

	sp, free := freePort(t), freePort(t)
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(s string) {
		t.Helper()
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	good := "routes:\n  http:\n    - {name: good, vhost: [good.example.com], backends: [127.0.0.1:1]}\n"
	write(good + fmt.Sprintf(`    - {name: web, vhost: [web.example.com], backends: [127.0.0.1:1]}
  tcp:
    - {name: pg, port: %d, backends: [127.0.0.1:1]}
    - {name: a, port: %d, backends: [127.0.0.1:1]}
    - {name: b, port: %d, bind: 127.0.0.1, backends: [127.0.0.1:1]}
`, sp, free, free))
	st, err := p.NewStatic(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	st.Update(snap(5, task("/web", "web.1", "127.0.0.1", []uint32{1, 2}, []uint32{0, sp}, map[string]string{"HAPROXY_0_VHOST": "web.example.com"})))

	doc := getRoutes(t, admin.URL)
	sources := map[string]string{}
	for _, r := range doc.Routes {
		sources[r.App] = r.Source + " " + r.RoutesFile
	}
	want := map[string]string{"/web": "app ", "/keel-static/good": "static " + file, "/keel-static/a": "static " + file}
	if fmt.Sprint(sources) != fmt.Sprint(want) {
		t.Errorf("routes and their sources: %v, want %v", sources, want)
	}
	conflicts := func(doc routesDoc) string {
		var out []string
		for _, e := range doc.LabelErrors {
			out = append(out, e.App+" "+e.Label+" "+e.Value)
		}
		return strings.Join(out, "; ")
	}
	wantConflicts := fmt.Sprintf("/keel-static/web routes.http web.example.com; /keel-static/pg routes.tcp 127.0.0.1:%d; /keel-static/b routes.tcp 127.0.0.1:%d", sp, free)
	if got := conflicts(doc); doc.Generation != 5 || got != wantConflicts {
		t.Fatalf("generation %d, label errors %q, want %q", doc.Generation, got, wantConflicts)
	}
	if r := doc.LabelErrors[0].Reason; !strings.Contains(r, "/web from the cluster") {
		t.Errorf("reason: %q", r)
	}
	if v, _ := sample(t, reg, "keel_proxy_label_errors", map[string]string{}); v != 3 {
		t.Errorf("keel_proxy_label_errors = %v, want 3", v)
	}

	// A file the parser refuses (two routes on one port) is shown too;
	// the last good routes, and their conflicts, stay.
	write(good + fmt.Sprintf("  tcp:\n    - {name: x, port: %d, backends: [127.0.0.1:1]}\n    - {name: y, port: %d, backends: [127.0.0.1:1]}\n", free, free))
	var refused *LabelError
	eventually(t, "the refused file on /v1/routes", func() bool {
		doc = getRoutes(t, admin.URL)
		for i, e := range doc.LabelErrors {
			if e.Label == routesFileLabel {
				refused = &doc.LabelErrors[i]
				return true
			}
		}
		return false
	})
	if refused.App != routesFileApp || refused.Value != file || !strings.Contains(refused.Reason, "tcp[y]: port") ||
		!strings.Contains(refused.Reason, "also in tcp[x]") || !strings.HasSuffix(refused.Reason, "the last good routes keep serving") {
		t.Errorf("refused file: %+v", *refused)
	}
	if got := conflicts(doc); !strings.HasPrefix(got, wantConflicts+"; ") || len(doc.Routes) != 4 {
		t.Errorf("while refused: label errors %q, %d routes", got, len(doc.Routes))
	}

	// Fixed: the new routes serve (/web's two ports and good), and
	// nothing is reported.
	write(good)
	eventually(t, "no label errors once the file is good", func() bool {
		doc = getRoutes(t, admin.URL)
		return len(doc.LabelErrors) == 0 && len(doc.Routes) == 3
	})
	if v, _ := sample(t, reg, "keel_proxy_label_errors", map[string]string{}); v != 0 {
		t.Errorf("keel_proxy_label_errors = %v, want 0", v)
	}
}
