package dns

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/snapshot"
)

// benchSnapshot is n tasks in apps of three instances with one port each.
func benchSnapshot(n int) *snapshot.Snapshot {
	s := snapshot.Empty()
	s.Generation = 1
	s.Leader = snapshot.Master{ID: "m1", IP: "10.0.0.1", Port: 5050}
	s.Masters = []snapshot.Master{s.Leader}
	for i := 0; i < n; i++ {
		s.Tasks = append(s.Tasks, snapshot.Task{ID: fmt.Sprintf("app%d.%d", i/3, i), Name: fmt.Sprintf("app%d", i/3), FrameworkName: "marathon",
			AgentID: fmt.Sprintf("agent-S%d", i%100), AgentIP: fmt.Sprintf("10.1.0.%d", i%100+1), State: mesos.TaskRunning,
			IPs:   []string{fmt.Sprintf("172.16.%d.%d", i/250%256, i%250+1)},
			Ports: []snapshot.Port{{Number: uint32(31000 + i%1000), Protocol: "tcp", Name: "http"}}})
	}
	return s
}

// benchQueries are packed queries: A and SRV names of the zone and one
// unknown name in ten.
func benchQueries(b *testing.B, n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		m := new(mdns.Msg)
		switch {
		case i%10 == 9:
			m.SetQuestion(fmt.Sprintf("unknown%d.marathon.mesos.", i), mdns.TypeA)
		case i%2 == 0:
			m.SetQuestion(fmt.Sprintf("app%d.marathon.mesos.", i/3), mdns.TypeA)
		default:
			m.SetQuestion(fmt.Sprintf("_app%d._tcp.marathon.mesos.", i/3), mdns.TypeSRV)
		}
		m.Id = uint16(i)
		p, err := m.Pack()
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// BenchmarkQuery measures one UDP query end to end in memory on a zone of
// 10 000 tasks: the general path (unpack, answer, pack) against the fast
// path (cached packed replies).
func BenchmarkQuery(b *testing.B) {
	s, err := New(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	s.Update(benchSnapshot(10000))
	qs := benchQueries(b, 3000)
	client := net.IPv4(127, 0, 0, 1)
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			req := new(mdns.Msg)
			if err := req.Unpack(qs[i%len(qs)]); err != nil {
				b.Fatal(err)
			}
			resp := s.answer(req, true, client)
			if _, err := resp.Pack(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		w := &udpWorker{s: s}
		addr := &net.UDPAddr{IP: client, Port: 5353}
		out := make([]byte, 0, maxUDPSize)
		now := time.Now()
		for i := 0; b.Loop(); i++ {
			reply, fwd := w.handle(qs[i%len(qs)], addr, now, out[:0])
			if reply == nil || fwd != nil {
				b.Fatal("no reply")
			}
		}
	})
}

// BenchmarkBuild builds the zone of 100 000 tasks and reports the live
// heap it holds per record (after a GC), the figure behind the gateway's
// resident memory.
func BenchmarkBuild(b *testing.B) {
	snap := benchSnapshot(100000)
	opts := BuildOptions{Domain: "mesos", TTL: 60}
	var z *Records
	for b.Loop() {
		z = Build(snap, opts)
	}
	var before, after runtime.MemStats
	z = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	z = Build(snap, opts)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(z.Len()), "B/record")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB/zone")
	runtime.KeepAlive(z)
}
