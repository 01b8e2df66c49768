package proxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink tests can read while the proxy writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseStaticRoutes(t *testing.T) {
	sr, err := ParseStaticRoutes([]byte(`
http_addr: ":80"
routes:
  http:
    - vhost: [Legacy.Example.com]
      path: /api
      backends: [10.0.0.5:8080, legacy-b.internal:8080]
      hsts: true
  tcp:
    - name: pg
      port: 5432
      backends: [10.0.0.7:5432]
  udp:
    - port: 53
      bind: 127.0.0.1
      backends: [10.0.0.8:53]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.HTTP) != 1 || sr.HTTP[0].Name != "http-0" || sr.HTTP[0].VHosts[0] != "legacy.example.com" || !sr.HTTP[0].HSTS ||
		len(sr.TCP) != 1 || sr.TCP[0].Name != "pg" || len(sr.UDP) != 1 || sr.UDP[0].Name != "udp-53" {
		t.Fatalf("parsed %+v", sr)
	}
	if sr, err := ParseStaticRoutes([]byte("http_addr: \":80\"\n")); err != nil || len(sr.HTTP)+len(sr.TCP)+len(sr.UDP) != 0 {
		t.Fatalf("no section: %+v %v", sr, err)
	}
	for name, c := range map[string]struct{ in, want string }{
		"not yaml":      {"routes: [\n", "proxy: routes"},
		"unknown key":   {"routes:\n  tcp:\n    - port: 1\n      backend: [a:1]\n", "backend"},
		"no backends":   {"routes:\n  tcp:\n    - port: 1\n", "no backends"},
		"bad backend":   {"routes:\n  tcp:\n    - port: 1\n      backends: [nope]\n", "not host:port"},
		"bad port":      {"routes:\n  udp:\n    - port: 70000\n      backends: [a:1]\n", "not a port"},
		"dup port":      {"routes:\n  tcp:\n    - {port: 1, backends: [a:1], name: x}\n    - {port: 1, backends: [a:1], name: y}\n", "also in"},
		"no vhost":      {"routes:\n  http:\n    - backends: [a:1]\n", "no vhost"},
		"dup vhost":     {"routes:\n  http:\n    - {vhost: [a.b], backends: [a:1]}\n    - {vhost: [A.b], backends: [a:1]}\n", "also in"},
		"relative path": {"routes:\n  http:\n    - {vhost: [a.b], path: api, backends: [a:1]}\n", "must start with /"},
		"relative cert": {"routes:\n  http:\n    - {vhost: [a.b], ssl_cert: [c.pem], backends: [a:1]}\n", "absolute"},
		"bad balance":   {"routes:\n  tcp:\n    - {port: 1, balance: fast, backends: [a:1]}\n", "unknown balance"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseStaticRoutes([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestMergeStaticSnapshotWins(t *testing.T) {
	sr, err := ParseStaticRoutes([]byte(`
routes:
  http:
    - {name: web, vhost: [web.example.com], backends: [10.0.0.5:80]}
    - {name: other, vhost: [other.example.com], backends: [10.0.0.6:80], redirect_to_https: true, hsts: true, ssl_cert: [/etc/c.pem]}
  udp:
    - {name: syslog, port: 514, backends: [10.0.0.9:514, 10.0.0.10:514]}
  tcp:
    - {name: pg, port: 5432, backends: [10.0.0.7:5432]}
    - {name: redis, port: 6379, backends: [10.0.0.8:6379]}
`))
	if err != nil {
		t.Fatal(err)
	}
	in := snap(7, task("/web", "web.1", "10.1.0.1", []uint32{31000, 31001}, []uint32{0, 5432},
		map[string]string{"HAPROXY_0_VHOST": "web.example.com"}))
	merged, errs := MergeStatic(in, sr, TableOptions{ServiceBind: "127.0.0.1"})
	if len(in.Tasks) != 1 {
		t.Fatal("MergeStatic modified its snapshot")
	}
	if len(errs) != 2 || errs[0].App != "/keel-static/web" || errs[1].App != "/keel-static/pg" || !strings.Contains(errs[0].Reason, "/web") {
		t.Fatalf("conflicts: %+v", errs)
	}
	tb, lerrs := BuildTable(merged, TableOptions{ServiceBind: "127.0.0.1"})
	if len(lerrs) != 0 {
		t.Fatalf("label errors: %+v", lerrs)
	}
	got := describe(tb)
	for _, want := range []string{
		`/keel-static/other#0 http vhosts=[other.example.com] path="" listen= balance=roundrobin -> [10.0.0.6:80]`,
		`/keel-static/redis#0 tcp vhosts=[] path="" listen=127.0.0.1:6379 balance=roundrobin -> [10.0.0.8:6379]`,
		`/web#0 http vhosts=[web.example.com]`,
		`/web#1 tcp vhosts=[] path="" listen=127.0.0.1:5432`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.0.0.5") || strings.Contains(got, "10.0.0.7") {
		t.Errorf("conflicting static routes served:\n%s", got)
	}
	var other *Route
	for _, r := range tb.routes {
		if r.App == "/keel-static/other" {
			other = r
		}
	}
	if other == nil || !other.RedirectHTTPS || !other.HSTS || len(other.SSLCerts) != 1 || other.SSLCerts[0] != "/etc/c.pem" {
		t.Errorf("TLS settings of a static route: %+v", other)
	}
	if u := tb.udp["127.0.0.1:514"]; u == nil || u.Mode != "udp" || len(u.Backends) != 2 {
		t.Errorf("static udp port: %+v", u)
	}
}

func TestStaticRoutesReload(t *testing.T) {
	var logs syncBuffer
	p, url, _ := startWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, a := backend(t, "A", nil)
	_, b := backend(t, "B", nil)
	echo, sp := lineEcho(t), freePort(t)
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(s string) {
		t.Helper()
		// As editors do: a new file renamed over the old one.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	routes := func(port uint32) string {
		return fmt.Sprintf("group: external\nroutes:\n  http:\n    - {vhost: [static.example.com], backends: [127.0.0.1:%d]}\n  tcp:\n    - {port: %d, backends: [127.0.0.1:%d]}\n", port, sp, echo)
	}
	write(routes(a))
	st, err := p.NewStatic(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	serves := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			code, body := get(t, url+"/", "static.example.com", nil)
			if code == 200 && body == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("static.example.com: %d %q, want %q", code, body, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	serves("A", 5*time.Second)
	// The static TCP port serves, and a snapshot from the cluster keeps it.
	st.Update(snap(3))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	if out, err := dialLine(t, sp).roundTrip("tcp"); err != nil || out != "echo:tcp\n" {
		t.Fatalf("static tcp port: %q %v", out, err)
	}

	write(routes(b))
	serves("B", time.Second)

	write("routes:\n  http: [\n")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "broken routes file") {
		if time.Now().After(deadline) {
			t.Fatal("broken file not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	serves("B", 0)

	// Fixed again: followed again.
	write(routes(a))
	serves("A", time.Second)
}

func TestStaticExampleConfig(t *testing.T) {
	b, err := os.ReadFile("../configs/examples/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sr, err := ParseStaticRoutes(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.HTTP) != 1 || len(sr.TCP) != 1 || len(sr.UDP) != 1 || !sr.HTTP[0].RedirectHTTPS {
		t.Fatalf("example routes: %+v", sr)
	}
}

// TestMergeStaticConflicts: which static routes MergeStatic leaves out,
// and what it says about them.
func TestMergeStaticConflicts(t *testing.T) {
	tcp := func(name, bind string, port int) StaticPort {
		return StaticPort{Name: name, Bind: bind, Port: port, Backends: []string{"10.0.0.9:1"}}
	}
	web := func(name, vhost, path string) StaticHTTP {
		return StaticHTTP{Name: name, VHosts: []string{vhost}, Path: path, Backends: []string{"10.0.0.9:80"}}
	}
	cluster := task("/app", "app.1", "10.1.0.1", []uint32{31000, 31001}, []uint32{5432, 0}, map[string]string{"HAPROXY_1_VHOST": "app.example.com"})
	v6 := task("/v6", "v6.1", "10.1.0.2", []uint32{31000}, []uint32{6000}, map[string]string{"HAPROXY_0_BIND_ADDR": "::1"})
	named := task("/keel-static/taken", "x.1", "10.1.0.3", []uint32{31000}, nil, map[string]string{"HAPROXY_0_VHOST": "x.example.com"})
	type left struct{ app, value, reason string }
	for _, c := range []struct {
		name string
		sr   StaticRoutes
		want []left
	}{
		{"no conflict; tcp and udp may share a port", StaticRoutes{TCP: []StaticPort{tcp("a", "", 7000)}, UDP: []StaticPort{tcp("b", "", 7000)}}, nil},
		{"same port as the cluster", StaticRoutes{TCP: []StaticPort{tcp("a", "", 5432)}},
			[]left{{"/keel-static/a", "127.0.0.1:5432", "already served by /app from the cluster, which wins"}}},
		{"wildcard beside the cluster's address", StaticRoutes{TCP: []StaticPort{tcp("a", "0.0.0.0", 5432), tcp("b", "::", 5432)}},
			[]left{{"/keel-static/a", "0.0.0.0:5432", "cannot be bound beside 127.0.0.1:5432 of /app from the cluster"},
				{"/keel-static/b", "[::]:5432", "cannot be bound beside 127.0.0.1:5432 of /app"}}},
		{"an IPv4 wildcard does not take IPv6", StaticRoutes{TCP: []StaticPort{tcp("a", "0.0.0.0", 6000)}}, nil},
		{"default bind and the same address spelt out", StaticRoutes{TCP: []StaticPort{tcp("a", "", 7000), tcp("b", "127.0.0.1", 7000)}},
			[]left{{"/keel-static/b", "127.0.0.1:7000", "already served by /keel-static/a, earlier in the routes file"}}},
		{"two static wildcards", StaticRoutes{UDP: []StaticPort{tcp("a", "127.0.0.2", 53), tcp("b", "0.0.0.0", 53)}},
			[]left{{"/keel-static/b", "0.0.0.0:53", "cannot be bound beside 127.0.0.2:53 of /keel-static/a, earlier"}}},
		{"vhost and path of the cluster", StaticRoutes{HTTP: []StaticHTTP{web("a", "app.example.com", ""), web("b", "app.example.com", "/api")}},
			[]left{{"/keel-static/a", "app.example.com", "already served by /app from the cluster"}}},
		{"vhost and path of another static route", StaticRoutes{HTTP: []StaticHTTP{web("a", "s.example.com", "/x"), web("b", "s.example.com", "/x")}},
			[]left{{"/keel-static/b", "s.example.com/x", "already served by /keel-static/a, earlier in the routes file"}}},
		{"app ID of a cluster app", StaticRoutes{HTTP: []StaticHTTP{web("taken", "other.example.com", "")}, TCP: []StaticPort{tcp("taken", "", 7001)}},
			[]left{{"/keel-static/taken", "/keel-static/taken", "app ID already used by the cluster"}, {"/keel-static/taken", "/keel-static/taken", "app ID"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := snap(1, cluster, v6, named)
			merged, errs := MergeStatic(in, &c.sr, TableOptions{ServiceBind: "127.0.0.1"})
			if len(errs) != len(c.want) {
				t.Fatalf("conflicts %+v, want %d", errs, len(c.want))
			}
			for i, w := range c.want {
				if e := errs[i]; e.App != w.app || e.Value != w.value || !strings.HasPrefix(e.Reason, w.reason) {
					t.Errorf("conflict %d: %+v, want %+v", i, e, w)
				}
			}
			// What is reported is left out; the rest is routed, and the
			// table has no label errors of its own.
			tb, lerrs := BuildTable(merged, TableOptions{ServiceBind: "127.0.0.1"})
			if len(lerrs) != 0 {
				t.Errorf("label errors of the merged table: %+v", lerrs)
			}
			static := 0
			for _, r := range tb.routes {
				if strings.HasPrefix(r.App, staticPrefix) && r.App != "/keel-static/taken" {
					static++
				}
			}
			if want := len(c.sr.HTTP) + len(c.sr.TCP) + len(c.sr.UDP) - len(c.want); static != want {
				t.Errorf("%d static routes in the table, want %d:\n%s", static, want, describe(tb))
			}
		})
	}
}
