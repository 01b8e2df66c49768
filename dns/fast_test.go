package dns

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/snapshot"
)

// bigSnapshot is the golden snapshot plus one name with 100 A records and
// one SRV name with 40, so replies get truncated.
func bigSnapshot() *snapshot.Snapshot {
	s := testSnapshot()
	for i := 0; i < 100; i++ {
		t := snapshot.Task{ID: fmt.Sprintf("many.%d", i), Name: "many", FrameworkName: "marathon",
			AgentID: "a-S1", AgentIP: "10.0.0.11", State: mesos.TaskRunning, IPs: []string{fmt.Sprintf("172.18.0.%d", i)}}
		if i < 40 {
			t.Ports = []snapshot.Port{{Number: uint32(32000 + i), Protocol: "tcp"}}
		}
		s.Tasks = append(s.Tasks, t)
	}
	return s
}

func sortedStrings(rrs []mdns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	sort.Strings(out)
	return out
}

// sameReply compares two replies up to the order of records; when the
// reply is truncated only the counts must agree (which records survive
// depends on the order).
func sameReply(fast, general *mdns.Msg) error {
	if fast.MsgHdr != general.MsgHdr {
		return fmt.Errorf("header: fast %+v, general %+v", fast.MsgHdr, general.MsgHdr)
	}
	if fmt.Sprint(fast.Question) != fmt.Sprint(general.Question) {
		return fmt.Errorf("question: fast %v, general %v", fast.Question, general.Question)
	}
	for _, sec := range []struct {
		name string
		f, g []mdns.RR
	}{{"answer", fast.Answer, general.Answer}, {"authority", fast.Ns, general.Ns}, {"additional", fast.Extra, general.Extra}} {
		fs, gs := sortedStrings(sec.f), sortedStrings(sec.g)
		if general.Truncated {
			if len(fs) != len(gs) {
				return fmt.Errorf("%s (truncated): fast %d records, general %d", sec.name, len(fs), len(gs))
			}
			continue
		}
		if strings.Join(fs, "\n") != strings.Join(gs, "\n") {
			return fmt.Errorf("%s:\nfast:\n%s\ngeneral:\n%s", sec.name, strings.Join(fs, "\n"), strings.Join(gs, "\n"))
		}
	}
	return nil
}

// mixCase upper-cases every other letter.
func mixCase(s string) string {
	b := []byte(s)
	for i := range b {
		if i%2 == 0 && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// TestFastPathMatchesGeneral asks every name of the golden zone (and of a
// zone with truncated answers) every interesting way, and holds the fast
// path's reply to the general path's.
func TestFastPathMatchesGeneral(t *testing.T) {
	for _, tc := range []struct {
		name string
		snap *snapshot.Snapshot
		cfg  Config
	}{
		{"golden", testSnapshot(), Config{Addr: "127.0.0.1:0", HealthyOnly: true}},
		{"golden with resolvers", testSnapshot(), Config{Addr: "127.0.0.1:0", HealthyOnly: true, Resolvers: []string{"192.0.2.53:53"}}},
		{"truncating", bigSnapshot(), Config{Addr: "127.0.0.1:0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			s.Update(tc.snap)
			z := s.Zone()
			names := append(z.Names(), "nope.marathon.mesos.", "x.y.z.mesos.", "example.com.", "mesosx.", "a_b.mesos.")
			client := net.IPv4(127, 0, 0, 1)
			fast, total := 0, 0
			var buf [256]byte
			for _, name := range names {
				for _, qname := range []string{name, mixCase(name)} {
					for _, qtype := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypeSOA, mdns.TypeNS, mdns.TypeMX, mdns.TypeTXT, mdns.TypeANY} {
						for _, edns := range []uint16{0, 100, 512, 1232, 4096} {
							for _, flags := range []int{0, 1, 2, 3} {
								req := new(mdns.Msg)
								req.SetQuestion(qname, qtype)
								req.Id = uint16(total)
								req.RecursionDesired = flags&1 != 0
								req.CheckingDisabled = flags&2 != 0
								if edns > 0 {
									req.SetEdns0(edns, flags&2 != 0)
								}
								pkt, err := req.Pack()
								if err != nil {
									t.Fatal(err)
								}
								total++
								var q rawQuery
								if parseQuery(pkt, buf[:], &q) != parseFast {
									continue
								}
								out, ok := s.fastReply(z, pkt, nil, &q)
								if !ok {
									continue
								}
								fast++
								got := new(mdns.Msg)
								if err := got.Unpack(out); err != nil {
									t.Fatalf("%s %s: fast reply does not unpack: %v", qname, mdns.TypeToString[qtype], err)
								}
								want, up := s.prepare(req, true, client)
								if up != nil {
									t.Fatalf("%s: fast path answered a name to forward", qname)
								}
								if err := sameReply(got, want); err != nil {
									t.Fatalf("%s %s edns %d flags %d: %v", qname, mdns.TypeToString[qtype], edns, flags, err)
								}
							}
						}
					}
				}
			}
			// Every name under the domain but ANY queries, mixed-case
			// truncated replies and the out-of-domain ones take the fast path.
			if fast < total/2 {
				t.Fatalf("fast path took %d of %d queries", fast, total)
			}
			t.Logf("fast path took %d of %d queries", fast, total)
		})
	}
}

// TestFastPathOrders checks that cached replies still vary the answer order.
func TestFastPathOrders(t *testing.T) {
	s, _ := New(Config{Addr: "127.0.0.1:0"})
	s.Update(bigSnapshot())
	for _, tc := range []struct {
		name   string
		qtype  uint16
		orders int
	}{{"hello.marathon.mesos.", mdns.TypeA, 2}, {"_hello._tcp.marathon.mesos.", mdns.TypeSRV, 2}, {"many.marathon.mesos.", mdns.TypeA, maxVariants},
		{"leader.mesos.", mdns.TypeA, 1}} {
		req := new(mdns.Msg)
		req.SetQuestion(tc.name, tc.qtype)
		pkt, _ := req.Pack()
		seen := map[string]bool{}
		var buf [256]byte
		for i := 0; i < 500; i++ {
			var q rawQuery
			if parseQuery(pkt, buf[:], &q) != parseFast {
				t.Fatalf("%s: not on the fast path", tc.name)
			}
			out, ok := s.fastReply(s.Zone(), pkt, nil, &q)
			if !ok {
				t.Fatalf("%s: fast path declined", tc.name)
			}
			m := new(mdns.Msg)
			if err := m.Unpack(out); err != nil {
				t.Fatal(err)
			}
			var order []string
			for _, rr := range m.Answer {
				order = append(order, rr.String())
			}
			seen[strings.Join(order, ",")] = true
		}
		if len(seen) != tc.orders {
			t.Errorf("%s: %d answer orders in 500 queries, want %d", tc.name, len(seen), tc.orders)
		}
	}
}

// TestUDPLoop drives the batch loop over a real socket with fast and
// general queries and a response (which must be dropped).
func TestUDPLoop(t *testing.T) {
	s := startServer(t, Config{})
	s.Update(testSnapshot())
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A response is never answered; the query after it is.
	resp := new(mdns.Msg)
	resp.SetQuestion("hello.marathon.mesos.", mdns.TypeA)
	resp.Response, resp.Id = true, 1
	q := new(mdns.Msg)
	q.SetQuestion("hello.marathon.mesos.", mdns.TypeA)
	q.Id = 2
	for _, m := range []*mdns.Msg{resp, q} {
		b, _ := m.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 1500)
	n, err := conn.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	m := new(mdns.Msg)
	if err := m.Unpack(b[:n]); err != nil || m.Id != 2 || len(m.Answer) != 2 {
		t.Fatalf("reply %v (%v), want ID 2 with two answers", m, err)
	}
	// Garbage is dropped, and the server keeps answering.
	conn.Write([]byte{1, 2, 3})
	if r := query(t, s, "udp", "leader.mesos.", mdns.TypeA, true); len(r.Answer) != 1 {
		t.Fatalf("after garbage: %v", r)
	}
	// A general-path query (two questions is FORMERR).
	two := new(mdns.Msg)
	two.SetQuestion("leader.mesos.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	r, _, err := (&mdns.Client{Timeout: 2 * time.Second}).Exchange(two, s.Addr())
	if err != nil || r.Rcode != mdns.RcodeFormatError {
		t.Fatalf("two questions: %v, %v", r, err)
	}
}

// FuzzPacket feeds any packet to the UDP handler: no panic, and either a
// drop or a reply that unpacks, carries the query's ID and, when the fast
// path gave it, matches the general path's.
func FuzzPacket(f *testing.F) {
	s, _ := New(Config{Addr: "127.0.0.1:0", HealthyOnly: true})
	s.Update(bigSnapshot())
	for _, tc := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{{"hello.marathon.mesos.", mdns.TypeA, 0}, {"_hello._tcp.marathon.mesos.", mdns.TypeSRV, 1232}, {"MANY.marathon.mesos.", mdns.TypeA, 512},
		{"nope.mesos.", mdns.TypeAAAA, 4096}, {"example.com.", mdns.TypeA, 0}} {
		m := new(mdns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		if tc.edns > 0 {
			m.SetEdns0(tc.edns, true)
		}
		b, _ := m.Pack()
		f.Add(b)
	}
	w := &udpWorker{s: s}
	addr := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5353} // not allowed to recurse: nothing is forwarded
	f.Fuzz(func(t *testing.T, pkt []byte) {
		reply, fwd := w.handle(pkt, addr, time.Now(), nil)
		if fwd != nil {
			t.Fatal("a public client's query was forwarded")
		}
		if reply == nil {
			return
		}
		got := new(mdns.Msg)
		if err := got.Unpack(reply); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if got.Id != uint16(pkt[0])<<8|uint16(pkt[1]) || !got.Response {
			t.Fatalf("reply %v to a query with ID %d", got.MsgHdr, uint16(pkt[0])<<8|uint16(pkt[1]))
		}
		var q rawQuery
		var buf [256]byte
		if parseQuery(pkt, buf[:], &q) != parseFast {
			return
		}
		fast, ok := s.fastReply(s.Zone(), pkt, nil, &q)
		req := new(mdns.Msg)
		if !ok || req.Unpack(pkt) != nil {
			return
		}
		want, _ := s.prepare(req, true, addr.IP)
		fm := new(mdns.Msg)
		if err := fm.Unpack(fast); err != nil {
			t.Fatal(err)
		}
		if err := sameReply(fm, want); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUDPIPv6 serves on an IPv6 socket (the ipv6 batch connection).
func TestUDPIPv6(t *testing.T) {
	leakcheck.Check(t)
	s, err := New(Config{Addr: "[::1]:0"})
	if err != nil {
		t.Fatal(err)
	}
	s.Update(testSnapshot())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("IPv6 loopback: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if r := query(t, s, "udp", "v6.marathon.mesos.", mdns.TypeAAAA, true); len(r.Answer) != 1 || r.Answer[0].(*mdns.AAAA).AAAA.String() != "fd00::5" {
		t.Fatalf("over IPv6: %v", r)
	}
	// Rate limiting keys on the /56 of an IPv6 client.
	if prefix(net.ParseIP("2001:db8::1")) == prefix(net.ParseIP("2001:db8:0:100::1")) || prefix(net.ParseIP("2001:db8::1")) != prefix(net.ParseIP("2001:db8:0:ff::2")) {
		t.Fatal("IPv6 clients are not keyed by their /56")
	}
}
