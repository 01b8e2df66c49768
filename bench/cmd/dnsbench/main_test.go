package main

import (
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/dns"
)

const sampleOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5300 -c 20 -l 10 -d q.txt
Statistics:

  Queries sent:         1195404
  Queries completed:    1195380 (100.00%)
  Queries lost:         24 (0.00%)

  Response codes:       NOERROR 1086709 (90.91%), NXDOMAIN 108671 (9.09%)
  Average packet size:  request 41, response 206
  Run time (s):         10.000108
  Queries per second:   119536.709
  Average Latency (s):  0.000508 (min 0.000011, max 0.076763)
  Latency StdDev (s):   0.001011
`

func TestParseDnsperf(t *testing.T) {
	r, err := parseDnsperf("keel", sampleOutput)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(r.qps, 119536.709) || !near(r.avgMs, 0.508) || !near(r.maxMs, 76.763) || r.lost != 24 || r.respBytes != 206 {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parseDnsperf("keel", "Error: could not open file"); err == nil {
		t.Fatal("output without figures parsed")
	}
}

func TestZoneFileAndQueries(t *testing.T) {
	z := dns.Build(benchSnapshot(300), buildOptions())
	dir := t.TempDir()
	path := filepath.Join(dir, "mesos.zone")
	if err := writeZone(path, z); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	zp := mdns.NewZoneParser(f, "", path)
	n := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if _, exists := z.Lookup(strings.ToLower(rr.Header().Name)); !exists {
			t.Fatalf("zone file has %s, the zone does not", rr.Header().Name)
		}
		n++
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	if n != z.Len() {
		t.Fatalf("zone file has %d records, the zone %d", n, z.Len())
	}
	qpath := filepath.Join(dir, "queries.txt")
	nq, err := writeQueries(qpath, z)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(qpath)
	unknown := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, qtype, ok := strings.Cut(line, " ")
		if !ok || (qtype != "A" && qtype != "SRV") || !strings.HasSuffix(name, ".mesos.") || strings.HasSuffix(name, "..") {
			t.Fatalf("bad query line %q", line)
		}
		if _, exists := z.Lookup(name); !exists {
			unknown++
		}
	}
	if nq != 11000 || unknown != 1000 {
		t.Fatalf("%d queries, %d unknown; want 11000 and 1000", nq, unknown)
	}
}

// TestNSD runs the NSD that run configures on a small zone and checks it
// answers as Keel does.
func TestNSD(t *testing.T) {
	if _, err := exec.LookPath("nsd"); err != nil {
		t.Fatal("nsd is not installed: apt-get install nsd (or scripts/bench-deps.sh)")
	}
	z := dns.Build(benchSnapshot(30), buildOptions())
	dir := t.TempDir()
	if err := writeZone(filepath.Join(dir, "mesos.zone"), z); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "nsd.conf")
	os.WriteFile(conf, []byte(nsdConf(dir, port)), 0o644)
	cmd := exec.Command("nsd", "-d", "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	if err := waitDNS(addr, "app0.marathon.mesos."); err != nil {
		t.Fatal(err)
	}
	c := &mdns.Client{}
	m := new(mdns.Msg)
	m.SetQuestion("_app1._tcp.marathon.mesos.", mdns.TypeSRV)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := z.Lookup("_app1._tcp.marathon.mesos.")
	if len(r.Answer) != len(want) || len(want) != 3 || len(r.Extra) < 3 {
		t.Fatalf("NSD answered %v, want the 3 SRV records and their targets", r)
	}
	m.SetQuestion("unknown.marathon.mesos.", mdns.TypeA)
	if r, _, err := c.Exchange(m, addr); err != nil || r.Rcode != mdns.RcodeNameError {
		t.Fatalf("unknown name: %v, %v", r, err)
	}
}
