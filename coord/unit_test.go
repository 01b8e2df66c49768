package coord

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

func TestParseZK(t *testing.T) {
	tests := []struct {
		url     string
		servers []string
		path    string
		err     string
	}{
		{url: "zk://n1:2181,n2:2181,n3:2181/keel", servers: []string{"n1:2181", "n2:2181", "n3:2181"}, path: "/keel"},
		{url: "zk://127.0.0.1:2181/a/b/", servers: []string{"127.0.0.1:2181"}, path: "/a/b"},
		{url: "zk://[::1]:2181/mesos", servers: []string{"[::1]:2181"}, path: "/mesos"},
		{url: "zk://user:pass@n1:2181/keel", err: "authentication is not supported"},
		{url: "http://n1:2181/keel", err: "does not start with zk://"},
		{url: "zk://n1:2181", err: "has no path"},
		{url: "zk://n1:2181/", err: "has no path"},
		{url: "zk://n1/keel", err: "not host:port"},
		{url: "zk://n1:2181,/keel", err: "not host:port"},
		{url: "zk://n1:2181/a//b", err: "empty path segment"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			servers, path, err := ParseZK(tt.url)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "coord: ") {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(servers, tt.servers) || path != tt.path {
				t.Fatalf("got %v %q %v, want %v %q", servers, path, err, tt.servers, tt.path)
			}
		})
	}
}

func FuzzParseZK(f *testing.F) {
	f.Add("zk://n1:2181,n2:2181/keel")
	f.Add("zk://a@b:1/x")
	f.Fuzz(func(t *testing.T, url string) {
		servers, path, err := ParseZK(url)
		if err == nil && (len(servers) == 0 || !strings.HasPrefix(path, "/") || path == "/") {
			t.Fatalf("%q: accepted %v %q", url, servers, path)
		}
	})
}

func TestContenders(t *testing.T) {
	got := Contenders([]string{"state", "json.info_0000000012", "log_replicas", "json.info_0000000003", "info_0000000001", "json.info_x", "json.info_-2147483648", "json.info_0000000010"})
	want := []string{"json.info_0000000003", "json.info_0000000010", "json.info_0000000012"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEscapeKey(t *testing.T) {
	for _, k := range []string{"", ".", "..", "master/agents/ID", "apps//prod/web", "a~1~0", "100%", "ünï €", "\x00\x1f\x7f", "k", "%41"} {
		name := escapeKey(k)
		if strings.ContainsAny(name, "/~") || name == "." || name == ".." || name == "" {
			t.Errorf("escapeKey(%q) = %q is not a safe znode name", k, name)
		}
		if back, ok := unescapeKey(name); !ok || back != k {
			t.Errorf("unescapeKey(escapeKey(%q)) = %q %v", k, back, ok)
		}
	}
	for _, bad := range []string{"x", "k%", "k%4", "k%zz"} {
		if _, ok := unescapeKey(bad); ok {
			t.Errorf("unescapeKey(%q) accepted", bad)
		}
	}
}

func FuzzEscapeKey(f *testing.F) {
	f.Add("apps//prod/web")
	f.Fuzz(func(t *testing.T, k string) {
		name := escapeKey(k)
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:-%", c)) {
				t.Fatalf("escapeKey(%q) = %q has %q", k, name, c)
			}
		}
		if back, ok := unescapeKey(name); !ok || back != k {
			t.Fatalf("round trip of %q: %q %v", k, back, ok)
		}
	})
}

func TestFrozen(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mono := time.Now()
	tests := []struct {
		name       string
		wall, mono time.Duration
		want       bool
	}{
		{"normal tick", 500 * time.Millisecond, 500 * time.Millisecond, false},
		{"just under", 10 * time.Second, 10 * time.Second, false},
		{"SIGSTOP", 15 * time.Second, 15 * time.Second, true},
		{"suspend: wall only", 30 * time.Second, 500 * time.Millisecond, true},
		{"wall steps back", -time.Hour, 500 * time.Millisecond, false},
		{"monotonic only", 0, 11 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := frozen(base, base.Add(tt.wall), mono, mono.Add(tt.mono), 10*time.Second); got != tt.want {
				t.Fatalf("frozen = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMasterURL(t *testing.T) {
	tests := []struct {
		info mesos.MasterInfo
		want string
	}{
		{mesos.MasterInfo{IP: mesos.IPv4ToUint32([]byte{10, 0, 0, 7}), Port: 5050}, "http://10.0.0.7:5050"},
		{mesos.MasterInfo{Hostname: "m1", Port: 5050}, "http://m1:5050"},
		{mesos.MasterInfo{Hostname: "m1", Port: 1, Address: &mesos.Address{IP: "10.1.1.1", Hostname: "m1", Port: 5050}}, "http://10.1.1.1:5050"},
		{mesos.MasterInfo{Address: &mesos.Address{Hostname: "::1", Port: 5050}}, "http://[::1]:5050"},
	}
	for _, tt := range tests {
		if got := MasterURL(tt.info); got != tt.want {
			t.Errorf("MasterURL(%+v) = %q, want %q", tt.info, got, tt.want)
		}
	}
}

func TestInfoFromLocation(t *testing.T) {
	for loc, want := range map[string]string{
		"//10.0.0.1:5050":           "http://10.0.0.1:5050",
		"http://m2:5050/master/foo": "http://m2:5050",
		"/relative":                 "",
		"//nohost":                  "",
	} {
		info, ok := infoFromLocation(loc)
		if got := map[bool]string{true: MasterURL(info)}[ok]; got != want {
			t.Errorf("infoFromLocation(%q) = %q, want %q", loc, got, want)
		}
	}
}

// TestDetectorHostList runs a host-list detector against two fake masters
// on real sockets: one down, one redirecting to the leader.
func TestDetectorHostList(t *testing.T) {
	leakcheck.Check(t)
	var leader atomic.Value
	leader.Store("//127.0.0.1:5051")
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/master/redirect" {
			http.NotFound(w, r)
			return
		}
		http.Redirect(w, r, leader.Load().(string), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downAddr := down.Listener.Addr().String()
	down.Close()

	d, err := NewDetector(downAddr+","+strings.TrimPrefix(redirect.URL, "http://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := t.Context(), make(chan error, 1)
	runCtx, cancel := context.WithCancel(ctx)
	go func() { stop <- d.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-stop; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	got, err := d.LeaderURL(wctx)
	if err != nil || got != "http://127.0.0.1:5051" {
		t.Fatalf("LeaderURL = %q %v", got, err)
	}
	changed := d.Changed()
	leader.Store("http://127.0.0.1:5052/")
	select {
	case <-changed:
	case <-wctx.Done():
		t.Fatal("no change after the leader moved")
	}
	if info, ok := d.Leader(); !ok || MasterURL(info) != "http://127.0.0.1:5052" {
		t.Fatalf("leader %+v %v", info, ok)
	}
	if _, err := NewDetector("m1:5050,nonsense", nil); err == nil {
		t.Fatal("bad host list accepted")
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
