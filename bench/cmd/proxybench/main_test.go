package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/proxy"
)

const wrkOK = `Running 2s test @ http://127.0.0.1:46339/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.61ms    4.07ms  52.37ms   93.05%
    Req/Sec    18.33k     1.95k   20.55k    80.00%
  Latency Distribution
     50%    1.54ms
     75%    2.10ms
     90%    4.39ms
     99%   31.81us
  36499 requests in 2.01s, 3.06MB read
Requests/sec:  18129.45
Transfer/sec:      1.52MB
`

const wrkErrors = `Running 2s test @ http://127.0.0.1:1/
  1 threads and 50 connections
  Latency Distribution
     50%  500.00us
     75%    1.00ms
     90%    1.50ms
     99%    1.20s
  1000 requests in 2.00s, 3.06MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 10
Requests/sec:    500.00
Transfer/sec:      1.52MB
`

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name, out                      string
		rate, p50, p99, requests, errs float64
		bad                            bool
	}{
		{name: "ok", out: wrkOK, rate: 18129.45, p50: 1.54, p99: 0.03181, requests: 36499},
		{name: "errors", out: wrkErrors, rate: 500, p50: 0.5, p99: 1200, requests: 1000, errs: 20},
		{name: "garbage", out: "unable to connect to 127.0.0.1:1 Connection refused", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseWrk("x", tc.out)
			if tc.bad {
				if err == nil {
					t.Fatalf("parsed %+v from output without figures", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
			if !near(r.rate, tc.rate) || !near(r.p50, tc.p50) || !near(r.p99, tc.p99) || !near(r.units, tc.requests) || r.errors != int(tc.errs) {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	m := median([]result{{name: "k", rate: 3, cpu: 9, errors: 1}, {name: "k", rate: 1, cpu: 7}, {name: "k", rate: 2, cpu: 8, errors: 2}})
	if m.rate != 2 || m.cpu != 8 || m.errors != 3 || m.name != "k" {
		t.Fatalf("median %+v", m)
	}
	if m := median([]result{{rate: 4}, {rate: 1}}); m.rate != 2.5 {
		t.Fatalf("median of two %+v", m)
	}
}

func TestSpecs(t *testing.T) {
	o := options{conns: 50, size: 99, streams: 4, vhostStyle: "map"}
	all, err := specs("all", o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all {
		names = append(names, s.name)
	}
	if !slices.Equal(names, caseNames) {
		t.Fatalf("all runs %v, want %v", names, caseNames)
	}
	one, _ := specs("keepalive", o)
	if one[0].size != 99 {
		t.Fatalf("keepalive ignores --size: %+v", one[0])
	}
	if _, err := specs("nope", o); err == nil {
		t.Fatal("unknown case accepted")
	}
}

// TestHAProxyConfigs has the real HAProxy check every case's configuration.
func TestHAProxyConfigs(t *testing.T) {
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Fatal("haproxy is not installed: run scripts/bench-deps.sh")
	}
	all, _ := specs("all", options{conns: 50, size: 12, streams: 4, vhostStyle: "map"})
	acl, _ := specs("vhosts10k", options{vhostStyle: "acl"})
	acl[0].name = "vhosts10k-acl"
	for _, s := range append(all, acl...) {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			var backends []string
			for i := 0; i < s.backends; i++ {
				backends = append(backends, fmt.Sprintf("127.0.0.1:%d", 10000+i))
			}
			cert := ""
			if s.tls {
				cert = filepath.Join(dir, "default.pem")
				if err := writeCert(cert); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := haproxyConfig(dir, s, "127.0.0.1:8443", backends, cert)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("haproxy", "-c", "-f", cfg).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(cfg)
			switch {
			case s.apps > 1 && s.vhostStyle == "map":
				m, err := os.ReadFile(filepath.Join(dir, "hosts.map"))
				if err != nil || strings.Count(string(m), "\n") != s.apps {
					t.Fatalf("hosts.map: %v, %d lines", err, strings.Count(string(m), "\n"))
				}
			case s.apps > 1:
				if n := strings.Count(string(b), "use_backend"); n != s.apps {
					t.Fatalf("%d use_backend lines", n)
				}
			case s.kind == kindHTTP:
				if n := strings.Count(string(b), "  server "); n != s.backends {
					t.Fatalf("%d servers, want %d", n, s.backends)
				}
			}
		})
	}
}

func TestWriteCert(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.pem")
	if err := writeCert(path); err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(path, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Leaf.VerifyHostname("app7.bench.local"); err != nil {
		t.Fatal(err)
	}
}

// TestKeelSnapshotRoutes checks the route table Keel builds from the
// vhosts and backends cases' snapshots.
func TestKeelSnapshotRoutes(t *testing.T) {
	backends := []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	for _, tc := range []struct {
		name             string
		o                keelOptions
		routes, backends int
		vhost            string
	}{
		{"vhosts", keelOptions{backends: backends[:1], apps: 10000}, 10000, 1, "app9999.bench.local"},
		{"backends", keelOptions{backends: backends}, 1, 3, "bench.local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := proxy.New(proxy.Config{HTTPAddr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			p.Update(keelSnapshot(tc.o))
			mux := http.NewServeMux()
			p.RegisterAdmin(mux)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/routes", nil))
			var got struct {
				Routes      []proxy.Route      `json:"routes"`
				LabelErrors []proxy.LabelError `json:"label_errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Routes) != tc.routes || len(got.LabelErrors) != 0 {
				t.Fatalf("%d routes, label errors %v", len(got.Routes), got.LabelErrors)
			}
			last := got.Routes[len(got.Routes)-1]
			if tc.name == "vhosts" {
				last = got.Routes[slices.IndexFunc(got.Routes, func(r proxy.Route) bool { return r.App == "/app9999" })]
			}
			if len(last.Backends) != tc.backends || !slices.Contains(last.VHosts, tc.vhost) || last.Mode != "http" {
				t.Fatalf("route %+v", last)
			}
		})
	}
}

// TestChildren runs the backend and Keel children in-process on real
// sockets and drives each case's load through Keel, as run does.
func TestChildren(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name string
		s    spec
	}{
		{"http", spec{kind: kindHTTP, size: 100, backends: 1}},
		{"vhosts", spec{kind: kindHTTP, size: 12, backends: 1, apps: 50}},
		{"backends", spec{kind: kindHTTP, size: 12, backends: 5}},
		{"tls", spec{kind: kindHTTP, size: 12, backends: 1, tls: true}},
		{"bulk", spec{kind: kindTCPBulk, backends: 1}},
		{"conn", spec{kind: kindTCPConn, backends: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := t.TempDir()
			proto := map[kind]string{kindHTTP: "http", kindTCPBulk: "bulk", kindTCPConn: "conn"}[tc.s.kind]
			addrFile := filepath.Join(dir, "backends")
			bctx, bstop := context.WithCancel(ctx)
			berr := make(chan error, 1)
			go func() {
				berr <- runBackend(bctx, backendOptions{proto: proto, count: tc.s.backends, size: tc.s.size, addrs: addrFile})
			}()
			defer func() {
				bstop()
				if err := <-berr; err != nil {
					t.Error(err)
				}
			}()
			bp := &proc{done: make(chan struct{})}
			backends, err := waitAddrs(ctx, addrFile, bp)
			if err != nil || len(backends) != tc.s.backends {
				t.Fatalf("backends %v: %v", backends, err)
			}
			addr := freeAddr()
			o := keelOptions{backends: backends, apps: tc.s.apps, listen: addr}
			switch {
			case tc.s.kind != kindHTTP:
				o = keelOptions{backends: backends, service: addr}
			case tc.s.tls:
				certs := filepath.Join(dir, "certs")
				os.Mkdir(certs, 0o755)
				if err := writeCert(filepath.Join(certs, "default.pem")); err != nil {
					t.Fatal(err)
				}
				o = keelOptions{backends: backends, https: addr, certs: certs}
			}
			kctx, kstop := context.WithCancel(ctx)
			kerr := make(chan error, 1)
			go func() { kerr <- runKeel(kctx, o) }()
			defer func() {
				kstop()
				if err := <-kerr; err != nil {
					t.Error(err)
				}
			}()
			if err := waitListen(ctx, addr, bp); err != nil {
				t.Fatal(err)
			}
			if err := probe(ctx, tc.s, addr, tc.s.tls); err != nil {
				t.Fatal(err)
			}
			if tc.s.kind == kindHTTP {
				// The probe must be able to fail: the wrong size is refused.
				wrong := tc.s
				wrong.size++
				if err := probe(ctx, wrong, addr, tc.s.tls); err == nil {
					t.Fatal("probe accepted a response of the wrong size")
				}
				return
			}
			mode := map[kind]string{kindTCPBulk: "bulk", kindTCPConn: "conn"}[tc.s.kind]
			r, err := tcpLoad(ctx, mode, addr, 4, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if r.Errors != 0 || (mode == "bulk" && r.Bytes < 1<<20) || (mode == "conn" && (r.Conns < 10 || r.P99ms <= 0)) {
				t.Fatalf("tcpload %s: %+v", mode, r)
			}
		})
	}
}
