package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/snapshot"
)

func task(app, id, ip string, ports []uint32, svc []uint32, labels map[string]string) snapshot.Task {
	t := snapshot.Task{ID: id, Name: strings.Trim(app, "/"), AppID: app, FrameworkID: "f", AgentIP: ip,
		State: mesos.TaskRunning, Labels: labels, StartedAt: time.Unix(100, 0)}
	for i, p := range ports {
		sp := uint32(0)
		if i < len(svc) {
			sp = svc[i]
		}
		t.Ports = append(t.Ports, snapshot.Port{Number: p, Protocol: "tcp", ServicePort: sp})
	}
	return t
}

// describe renders a table compactly: one line per route.
func describe(t *Table) string {
	var lines []string
	for _, r := range t.routes {
		var bs []string
		for _, b := range r.Backends {
			bs = append(bs, b.Addr)
		}
		lines = append(lines, fmt.Sprintf("%s#%d %s vhosts=%v path=%q listen=%s balance=%s -> %v", r.App, r.PortIndex, r.Mode, r.VHosts, r.Path, r.Listen, r.Balance, bs))
	}
	return strings.Join(lines, "\n")
}

func TestBuildTable(t *testing.T) {
	no := false
	vhost := map[string]string{"HAPROXY_0_VHOST": "Web.Example.com,*.apps.example.com"}
	cases := []struct {
		name   string
		tasks  []snapshot.Task
		opts   TableOptions
		want   string
		errors int
	}{
		{"plain tcp service port", []snapshot.Task{task("/db", "db.1", "10.0.0.1", []uint32{31000}, []uint32{10000}, nil)}, TableOptions{},
			"/db#0 tcp vhosts=[] path=\"\" listen=0.0.0.0:10000 balance=roundrobin -> [10.0.0.1:31000]", 0},
		{"vhost makes http mode, two backends", []snapshot.Task{
			task("/web", "web.2", "10.0.0.2", []uint32{31001}, []uint32{10001}, vhost),
			task("/web", "web.1", "10.0.0.1", []uint32{31000}, []uint32{10001}, vhost)}, TableOptions{ServiceBind: "127.0.0.1"},
			"/web#0 http vhosts=[web.example.com *.apps.example.com] path=\"\" listen=127.0.0.1:10001 balance=roundrobin -> [10.0.0.1:31000 10.0.0.2:31001]", 0},
		{"other group is skipped", []snapshot.Task{task("/int", "int.1", "10.0.0.1", []uint32{31000}, []uint32{10000}, map[string]string{"HAPROXY_GROUP": "internal"})}, TableOptions{}, "", 0},
		{"group * takes all", []snapshot.Task{task("/int", "int.1", "10.0.0.1", []uint32{31000}, []uint32{10000}, map[string]string{"HAPROXY_GROUP": "internal"})}, TableOptions{Group: "*"},
			"/int#0 tcp vhosts=[] path=\"\" listen=0.0.0.0:10000 balance=roundrobin -> [10.0.0.1:31000]", 0},
		{"per-port group overrides", []snapshot.Task{task("/int", "int.1", "10.0.0.1", []uint32{31000, 31001}, []uint32{10000, 10001},
			map[string]string{"HAPROXY_GROUP": "internal", "HAPROXY_1_GROUP": "external"})}, TableOptions{},
			"/int#1 tcp vhosts=[] path=\"\" listen=0.0.0.0:10001 balance=roundrobin -> [10.0.0.1:31001]", 0},
		{"disabled port", []snapshot.Task{task("/a", "a.1", "10.0.0.1", []uint32{31000}, []uint32{10000}, map[string]string{"HAPROXY_0_ENABLED": "false"})}, TableOptions{}, "", 0},
		{"port and bind overrides, path, balance", []snapshot.Task{task("/a", "a.1", "10.0.0.1", []uint32{31000}, []uint32{10000},
			map[string]string{"HAPROXY_0_PORT": "9999", "HAPROXY_0_BIND_ADDR": "127.0.0.2", "HAPROXY_0_VHOST": "a.com", "HAPROXY_0_PATH": "/api", "HAPROXY_0_BALANCE": "leastconn"})}, TableOptions{},
			"/a#0 http vhosts=[a.com] path=\"/api\" listen=127.0.0.2:9999 balance=leastconn -> [10.0.0.1:31000]", 0},
		{"killing and unhealthy tasks get no traffic", []snapshot.Task{
			func() snapshot.Task {
				t := task("/a", "a.1", "10.0.0.1", []uint32{31000}, []uint32{10000}, nil)
				t.State = mesos.TaskKilling
				return t
			}(),
			func() snapshot.Task {
				t := task("/a", "a.2", "10.0.0.2", []uint32{31000}, []uint32{10000}, nil)
				t.HasHealthCheck, t.Healthy = true, &no
				return t
			}(),
			task("/a", "a.3", "10.0.0.3", []uint32{31000}, []uint32{10000}, nil)}, TableOptions{HealthyOnly: true},
			"/a#0 tcp vhosts=[] path=\"\" listen=0.0.0.0:10000 balance=roundrobin -> [10.0.0.3:31000]", 0},
		{"bad labels skip their port only", []snapshot.Task{
			task("/bad", "bad.1", "10.0.0.1", []uint32{31000, 31001, 31002, 31003}, []uint32{10000, 10001, 10002, 10003},
				map[string]string{"HAPROXY_0_BALANCE": "fastest", "HAPROXY_1_PORT": "http", "HAPROXY_2_ENABLED": "maybe", "HAPROXY_3_BIND_ADDR": "localhost"}),
			task("/good", "good.1", "10.0.0.2", []uint32{31000}, []uint32{10010}, nil)}, TableOptions{},
			"/good#0 tcp vhosts=[] path=\"\" listen=0.0.0.0:10010 balance=roundrobin -> [10.0.0.2:31000]", 4},
		{"no service port, no listener", []snapshot.Task{task("/a", "a.1", "10.0.0.1", []uint32{31000}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com"})}, TableOptions{},
			"/a#0 http vhosts=[a.com] path=\"\" listen= balance=roundrobin -> [10.0.0.1:31000]", 0},
		{"duplicate service port reported", []snapshot.Task{
			task("/a", "a.1", "10.0.0.1", []uint32{31000}, []uint32{10000}, nil),
			task("/b", "b.1", "10.0.0.2", []uint32{31000}, []uint32{10000}, nil)}, TableOptions{},
			"/a#0 tcp vhosts=[] path=\"\" listen=0.0.0.0:10000 balance=roundrobin -> [10.0.0.1:31000]\n/b#0 tcp vhosts=[] path=\"\" listen= balance=roundrobin -> [10.0.0.2:31000]", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := snapshot.Empty()
			s.Tasks = c.tasks
			tab, errs := BuildTable(s, c.opts)
			if got := describe(tab); got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
			if len(errs) != c.errors {
				t.Fatalf("label errors %+v, want %d", errs, c.errors)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	s := snapshot.Empty()
	s.Tasks = []snapshot.Task{
		task("/root", "r.1", "10.0.0.1", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com"}),
		task("/api", "p.1", "10.0.0.2", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com", "HAPROXY_0_PATH": "/api"}),
		task("/wild", "w.1", "10.0.0.3", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "*.b.com"}),
	}
	tab, _ := BuildTable(s, TableOptions{})
	for _, c := range []struct{ host, path, want string }{
		{"a.com", "/", "/root"}, {"a.com", "/api/x", "/api"}, {"a.com", "/apix", "/api"}, {"x.b.com", "/", "/wild"},
		{"b.com", "/", ""}, {"c.com", "/", ""},
	} {
		got := ""
		if vh := tab.lookup(c.host); vh != nil {
			if r := vh.match([]byte(c.path)); r != nil {
				got = r.App
			}
		}
		if got != c.want {
			t.Errorf("%s%s -> %q, want %q", c.host, c.path, got, c.want)
		}
	}
	if hostOnly("a.com:8000") != "a.com" || hostOnly("[::1]:80") != "::1" || hostOnly("a.com") != "a.com" {
		t.Fatal("hostOnly")
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, seed := range [][4]string{
		{"HAPROXY_0_VHOST", "a.com,*.b.com", "HAPROXY_0_PORT", "80"},
		{"HAPROXY_0_VHOST", "a.com", "HAPROXY_0_PATH", "/api"},
		{"HAPROXY_0_AUTH", "realm:user:$2y$10$abcdefghijklmnopqrstuu", "HAPROXY_0_STICKY", "true"},
		{"HAPROXY_0_SSL_CERT", "/etc/ssl/a.pem,/etc/ssl/b.pem", "HAPROXY_0_REDIRECT_TO_HTTPS", "1"},
		{"KEEL_0_WEIGHT", "3", "KEEL_0_PATH_REWRITE", "/old:/new"},
		{"KEEL_0_TIMEOUT_RESPONSE", "1m30s", "KEEL_0_RETRIES", "-1"},
		{"KEEL_1_MAX_CONNS", "10", "HAPROXY_1_MODE", "http"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		s := snapshot.Empty()
		s.Tasks = []snapshot.Task{task("/a", "a.1", "10.0.0.1", []uint32{31000, 31001}, []uint32{10000, 10001}, map[string]string{k1: v1, k2: v2})}
		tab, _ := BuildTable(s, TableOptions{})
		for _, r := range tab.routes {
			if r.Balance == "" || (r.Mode != "http" && r.Mode != "tcp") {
				t.Fatalf("bad route %+v", r)
			}
			if r.Weight < 0 || r.Retries < 0 || r.Retries > maxRetries || r.ResponseTimeout <= 0 || r.MaxConns < 0 {
				t.Fatalf("out-of-range route options %+v", r)
			}
			if r.RewriteFrom != "" && (r.RewriteFrom[0] != '/' || r.RewriteTo == "" || r.RewriteTo[0] != '/') {
				t.Fatalf("bad rewrite %q -> %q", r.RewriteFrom, r.RewriteTo)
			}
			if (r.auth == nil) != (r.AuthRealm == "") {
				t.Fatalf("auth %v realm %q", r.auth, r.AuthRealm)
			}
			for _, c := range r.SSLCerts {
				if !strings.HasPrefix(c, "/") {
					t.Fatalf("relative certificate path %q", c)
				}
			}
		}
	})
}

func FuzzMatch(f *testing.F) {
	s := snapshot.Empty()
	s.Tasks = []snapshot.Task{
		task("/a", "a.1", "10.0.0.1", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com,*.b.com", "HAPROXY_0_PATH": "/x"}),
		task("/c", "c.1", "10.0.0.2", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com", "HAPROXY_0_PATH": "/x", "KEEL_0_WEIGHT": "2"}),
		task("/r", "r.1", "10.0.0.3", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com"}),
	}
	tab, _ := BuildTable(s, TableOptions{})
	for _, seed := range [][2]string{{"a.com:80", "/x/y"}, {"A.COM", "/"}, {"x.b.com", "/x"}, {"[::1]:80", "/"}, {"b.com", ""}, {"a.com:", "/xx"}, {"0.B.Com", "0"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		vh := tab.lookup(strings.ToLower(hostOnly(host)))
		if vh == nil {
			return
		}
		r := vh.match([]byte(path))
		if r == nil {
			if vh == tab.lookup("a.com") {
				t.Fatalf("%q%q: a vhost with a catch-all route matched nothing", host, path)
			}
			return
		}
		if r.Path != "" && !strings.HasPrefix(path, r.Path) {
			t.Fatalf("%q matched route path %q", path, r.Path)
		}
		if strings.HasPrefix(path, "/x") && r.Path != "/x" {
			t.Fatalf("%q: the longer prefix /x lost to %q", path, r.Path)
		}
	})
}

func TestWeightedMatch(t *testing.T) {
	s := snapshot.Empty()
	s.Tasks = []snapshot.Task{
		task("/stable", "s.1", "10.0.0.1", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com", "KEEL_0_WEIGHT": "9"}),
		task("/canary", "c.1", "10.0.0.2", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com"}),
		task("/off", "o.1", "10.0.0.3", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "a.com", "KEEL_0_WEIGHT": "0"}),
		task("/zero1", "z.1", "10.0.0.4", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "z.com", "KEEL_0_WEIGHT": "0"}),
		task("/zero2", "z.2", "10.0.0.5", []uint32{1}, nil, map[string]string{"HAPROXY_0_VHOST": "z.com", "KEEL_0_WEIGHT": "0"}),
	}
	tab, _ := BuildTable(s, TableOptions{})
	got := map[string]int{}
	for i := 0; i < 1000; i++ {
		got[tab.lookup("a.com").match([]byte("/")).App]++
	}
	if got["/stable"] != 900 || got["/canary"] != 100 || got["/off"] != 0 {
		t.Fatalf("split %v, want 900/100/0", got)
	}
	// All weights zero: the first app by id takes the traffic rather than none.
	if r := tab.lookup("z.com").match([]byte("/")); r == nil || r.App != "/zero1" {
		t.Fatalf("all-zero weights: %v", r)
	}
	if n := testing.AllocsPerRun(100, func() { tab.lookup("a.com").match([]byte("/")) }); n != 0 {
		t.Fatalf("match allocates %v times", n)
	}
}
