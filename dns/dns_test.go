package dns

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/snapshot"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testSnapshot() *snapshot.Snapshot {
	yes, no := true, false
	s := snapshot.Empty()
	s.Generation = 7
	s.Leader = snapshot.Master{ID: "m1", IP: "10.0.0.1", Port: 5050}
	s.Masters = []snapshot.Master{s.Leader}
	s.Agents["a-S1"] = snapshot.Agent{ID: "a-S1", Hostname: "n1", IP: "10.0.0.11"}
	s.Agents["a-S2"] = snapshot.Agent{ID: "a-S2", Hostname: "n2", IP: "10.0.0.12"}
	s.Tasks = []snapshot.Task{
		{ID: "hello.1", Name: "hello", FrameworkName: "marathon", AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning,
			Ports: []snapshot.Port{{Number: 31000, Protocol: "tcp", Name: "http"}}},
		{ID: "hello.2", Name: "hello", FrameworkName: "marathon", AgentID: "a-S2", AgentIP: "10.0.0.12", State: mesos.TaskRunning,
			Ports: []snapshot.Port{{Number: 31005, Protocol: "tcp", Name: "http"}}},
		{ID: "prod_web.1", Name: "web.prod", FrameworkName: "marathon", AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning,
			IPs: []string{"172.17.0.2"}, Ports: []snapshot.Port{{Number: 31001, Protocol: "tcp"}, {Number: 31002, Protocol: "udp", Name: "dns"}}},
		{ID: "odd.1", Name: "Odd_Name!!", FrameworkName: "My Framework", AgentID: "a-S2", AgentIP: "10.0.0.12", State: mesos.TaskRunning},
		{ID: "dying.1", Name: "dying", FrameworkName: "marathon", AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskKilling},
		{ID: "sick.1", Name: "sick", FrameworkName: "marathon", AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning, HasHealthCheck: true, Healthy: &no},
		{ID: "well.1", Name: "well", FrameworkName: "marathon", AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning, HasHealthCheck: true, Healthy: &yes},
		{ID: "v6.1", Name: "v6", FrameworkName: "marathon", AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning, IPs: []string{"fd00::5"}},
	}
	return s
}

func render(r *Records) string {
	var lines []string
	for _, n := range r.Names() {
		rrs, _ := r.Lookup(n)
		for _, rr := range rrs {
			lines = append(lines, rr.String())
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func TestBuildGolden(t *testing.T) {
	got := render(Build(testSnapshot(), BuildOptions{Domain: "mesos", TTL: 60, HealthyOnly: true}))
	path := "testdata/zone.golden"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("zone differs from %s (rerun with -update if intended):\n%s", path, got)
	}
}

// startServer runs a server on a free loopback port.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	leakcheck.Check(t)
	return runServer(t, cfg)
}

// runServer is startServer for a test that has registered its leak check
// itself, before starting other servers.
func runServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

func query(t *testing.T, s *Server, network, name string, qtype uint16, edns bool) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s: %v", name, mdns.TypeToString[qtype], err)
	}
	return r
}

func TestServer(t *testing.T) {
	s := startServer(t, Config{HealthyOnly: true})
	s.Update(testSnapshot())

	r := query(t, s, "udp", "hello.marathon.mesos.", mdns.TypeA, false)
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 2 || !r.Authoritative {
		t.Fatalf("A: %v", r)
	}
	r = query(t, s, "udp", "HELLO.Marathon.MESOS.", mdns.TypeA, false)
	if len(r.Answer) != 2 {
		t.Fatalf("case-insensitive A: %v", r)
	}
	r = query(t, s, "tcp", "_hello._tcp.marathon.mesos.", mdns.TypeSRV, false)
	ports := map[uint16]bool{}
	for _, rr := range r.Answer {
		srv := rr.(*mdns.SRV)
		ports[srv.Port] = true
		if a := query(t, s, "udp", srv.Target, mdns.TypeA, false); len(a.Answer) != 1 {
			t.Fatalf("SRV target %s does not resolve", srv.Target)
		}
	}
	if !ports[31000] || !ports[31005] || len(ports) != 2 || len(r.Extra) != 2 {
		t.Fatalf("SRV: %v", r)
	}
	if r := query(t, s, "udp", "web-prod.marathon.mesos.", mdns.TypeA, false); len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "172.17.0.2" {
		t.Fatalf("netinfo IP first: %v", r)
	}
	for _, name := range []string{"nope.marathon.mesos.", "dying.marathon.mesos.", "sick.marathon.mesos."} {
		r := query(t, s, "udp", name, mdns.TypeA, false)
		if r.Rcode != mdns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA {
			t.Fatalf("%s: want NXDOMAIN with SOA, got %v", name, r)
		}
	}
	if r := query(t, s, "udp", "hello.marathon.mesos.", mdns.TypeMX, false); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Fatalf("NODATA: %v", r)
	}
	if r := query(t, s, "udp", "leader.mesos.", mdns.TypeA, false); len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "10.0.0.1" {
		t.Fatalf("leader: %v", r)
	}
	if r := query(t, s, "udp", "example.com.", mdns.TypeA, false); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("outside the domain without resolvers: %v", r)
	}

	// A big answer: truncated over UDP, whole over TCP.
	big := testSnapshot()
	for i := 0; i < 100; i++ {
		big.Tasks = append(big.Tasks, snapshot.Task{ID: fmt.Sprintf("many.%d", i), Name: "many", FrameworkName: "marathon",
			AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning, IPs: []string{fmt.Sprintf("172.18.0.%d", i)}})
	}
	s.Update(big)
	if r := query(t, s, "udp", "many.marathon.mesos.", mdns.TypeA, true); !r.Truncated {
		t.Fatalf("100 A records over UDP not truncated (%d answers)", len(r.Answer))
	}
	if r := query(t, s, "tcp", "many.marathon.mesos.", mdns.TypeA, true); r.Truncated || len(r.Answer) != 100 {
		t.Fatalf("TCP: truncated=%v answers=%d", r.Truncated, len(r.Answer))
	}
	// The swap is visible at once.
	s.Update(snapshot.Empty())
	if r := query(t, s, "udp", "hello.marathon.mesos.", mdns.TypeA, false); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("after swap: %v", r)
	}
}

func TestForward(t *testing.T) {
	// An upstream on loopback that answers every A query with 192.0.2.1.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.ParseIP("192.0.2.1")}}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	up.NotifyStartedFunc = func() { close(started) }
	go up.ActivateAndServe()
	<-started
	defer up.Shutdown()
	s := startServer(t, Config{Resolvers: []string{"127.0.0.1:1", pc.LocalAddr().String()}})
	r := query(t, s, "udp", "example.com.", mdns.TypeA, false)
	if len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != "192.0.2.1" {
		t.Fatalf("forwarded: %v", r)
	}
	// A client outside the allowed ranges is refused: no open resolver.
	req := new(mdns.Msg)
	req.SetQuestion("example.com.", mdns.TypeA)
	if r := s.answer(req, true, net.ParseIP("203.0.113.9")); r.Rcode != mdns.RcodeRefused {
		t.Fatalf("public client: %v", r)
	}
	if r := s.answer(req, true, net.ParseIP("10.1.2.3")); r.Rcode != mdns.RcodeSuccess {
		t.Fatalf("private client: %v", r)
	}
}

func FuzzHandler(f *testing.F) {
	s, _ := New(Config{Addr: "127.0.0.1:0"})
	s.Update(testSnapshot())
	seed := new(mdns.Msg)
	seed.SetQuestion("hello.marathon.mesos.", mdns.TypeSRV)
	b, _ := seed.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the server drops what does not parse
		}
		if resp := s.answer(req, true, net.IPv4(127, 0, 0, 1)); resp != nil {
			if _, err := resp.Pack(); err != nil {
				t.Fatalf("reply does not pack: %v", err)
			}
		}
	})
}

func TestSystemResolvers(t *testing.T) {
	path := t.TempDir() + "/resolv.conf"
	os.WriteFile(path, []byte("search example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"), 0o644)
	got := SystemResolvers(path)
	if strings.Join(got, ",") != "192.0.2.53:53,[2001:db8::53]:53" {
		t.Fatalf("got %v", got)
	}
	if SystemResolvers(t.TempDir()+"/missing") != nil {
		t.Fatal("missing file gave resolvers")
	}
}
