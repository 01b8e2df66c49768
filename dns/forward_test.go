package dns

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/internal/leakcheck"
)

// upstream runs a real miekg/dns server on loopback, UDP and TCP on one
// port, that answers every A query with ip, and returns its address.
func upstream(t *testing.T, ip string) string {
	t.Helper()
	pc, ln, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)}}
		w.WriteMsg(m)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return pc.LocalAddr().String()
}

func TestZoneResolvers(t *testing.T) {
	leakcheck.Check(t) // first, so it runs after the upstreams stop
	general := upstream(t, "192.0.2.1")
	consul := upstream(t, "192.0.2.2")
	inner := upstream(t, "192.0.2.3")
	s := runServer(t, Config{Resolvers: []string{general},
		ZoneResolvers: map[string][]string{"consul": {consul}, "dc1.consul.": {"127.0.0.1:1", inner}}})
	s.Update(testSnapshot())
	for _, tc := range []struct{ name, want string }{
		{"example.com.", "192.0.2.1"},
		{"web.service.consul.", "192.0.2.2"},
		{"WEB.Service.CONSUL.", "192.0.2.2"},
		{"consul.", "192.0.2.2"},
		{"notconsul.", "192.0.2.1"},
		// The most specific zone wins, past its dead first server.
		{"web.service.dc1.consul.", "192.0.2.3"},
	} {
		for _, network := range []string{"udp", "tcp"} {
			r := query(t, s, network, tc.name, mdns.TypeA, false)
			if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != tc.want {
				t.Errorf("%s over %s: %v, want %s", tc.name, network, r, tc.want)
			}
		}
	}
	// The domain itself is never forwarded.
	if r := query(t, s, "udp", "hello.marathon.mesos.", mdns.TypeA, false); len(r.Answer) != 2 || !r.Authoritative {
		t.Fatalf("domain: %v", r)
	}
	// Zone resolvers are forwarding too: not for public clients.
	req := new(mdns.Msg)
	req.SetQuestion("web.service.consul.", mdns.TypeA)
	if r := s.answer(req, true, net.ParseIP("203.0.113.9")); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("public client: %v", r)
	}
	// Without --resolvers a zone resolver still works, and other names are refused.
	s2 := runServer(t, Config{ZoneResolvers: map[string][]string{"consul": {consul}}})
	if r := query(t, s2, "udp", "web.service.consul.", mdns.TypeA, false); len(r.Answer) != 1 {
		t.Fatalf("zone resolver without resolvers: %v", r)
	}
	if r := query(t, s2, "udp", "example.com.", mdns.TypeA, false); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("no resolvers: %v", r)
	}
}

func TestZoneResolversConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		zr   map[string][]string
		ok   bool
	}{
		{"plain", map[string][]string{"consul": {"127.0.0.1:8600"}}, true},
		{"port 53 by default", map[string][]string{"consul": {"127.0.0.1"}}, true},
		{"ipv6", map[string][]string{"consul": {"[::1]:8600"}}, true},
		{"the domain", map[string][]string{"mesos": {"127.0.0.1"}}, false},
		{"under the domain", map[string][]string{"x.mesos.": {"127.0.0.1"}}, false},
		{"above the domain", map[string][]string{".": {"127.0.0.1"}}, false},
		{"no servers", map[string][]string{"consul": nil}, false},
		{"a hostname", map[string][]string{"consul": {"consul.local:8600"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Addr: "127.0.0.1:0", ZoneResolvers: tc.zr})
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	got, err := ParseZoneResolvers([]string{"consul=127.0.0.1:8600", " consul=127.0.0.2:8600", "corp=10.0.0.53"})
	if err != nil || len(got["consul"]) != 2 || got["consul"][1] != "127.0.0.2:8600" || got["corp"][0] != "10.0.0.53" {
		t.Fatalf("ParseZoneResolvers: %v, %v", got, err)
	}
	if _, err := ParseZoneResolvers([]string{"consul"}); err == nil {
		t.Fatal("an entry without '=' parsed")
	}
}

func TestConfigShowsZoneResolvers(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", ZoneResolvers: map[string][]string{"Consul.": {"127.0.0.1:8600"}}, RateLimit: 50})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/config", nil))
	var cfg struct {
		ZoneResolvers map[string][]string
		RateLimit     int
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.ZoneResolvers["consul."]; len(got) != 1 || got[0] != "127.0.0.1:8600" || cfg.RateLimit != 50 {
		t.Fatalf("/v1/config: %s", rec.Body.String())
	}
}
