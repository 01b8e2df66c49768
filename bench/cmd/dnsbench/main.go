// Command dnsbench compares Keel's DNS server with NSD by the DNS protocol
// of ../shared/BENCH.md: a zone built from a snapshot of --tasks tasks is
// served by Keel (GOMAXPROCS=1) and by NSD (one server process, response
// rate limiting off) from a zone file holding the very same records, both
// pinned to CPU 1; dnsperf, pinned to CPU 0, queries them alternately with
// 10 000 existing A and SRV names plus 10% unknown ones. For each run it
// prints QPS, average and maximum latency and lost queries, then the
// medians, the Keel/NSD ratios, both servers' resident memory and the
// exact commands.
//
//	go run ./bench/cmd/dnsbench run [--tasks 10000] [--pairs 3] [--duration 10s]
//
// The mode "keel" is its own child: Keel's dns.Server fed the generated
// snapshot, no master needed. Every file it writes lives in a temporary
// directory that is removed at exit. It exits non-zero only when it could
// not run.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/dns"
	"github.com/keelhq/keel/snapshot"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: dnsbench run|keel [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (keel)")
	tasks := fs.Int("tasks", 10000, "tasks in the snapshot")
	pairs := fs.Int("pairs", 3, "Keel/NSD run pairs (run)")
	duration := fs.Duration("duration", 10*time.Second, "length of one dnsperf run, whole seconds (run)")
	clients := fs.Int("clients", 20, "dnsperf clients, -c (run)")
	fs.Parse(args)
	switch mode {
	case "keel":
		runKeel(*listen, *tasks)
	case "run":
		if err := run(*tasks, *pairs, *duration, *clients); err != nil {
			log.Fatalf("dnsbench: %v", err)
		}
	default:
		log.Fatalf("dnsbench: unknown mode %q", mode)
	}
}

const domain = "mesos"

// benchSnapshot is a deterministic cluster of n tasks: apps of three
// instances with one named TCP port each, on 100 agents, with container
// IPs, so A names have one or three records and SRV answers carry
// additional A records.
func benchSnapshot(n int) *snapshot.Snapshot {
	s := snapshot.Empty()
	s.Generation = 1
	s.Leader = snapshot.Master{ID: "m1", IP: "10.0.0.1", Port: 5050}
	s.Masters = []snapshot.Master{s.Leader}
	const agents = 100
	for a := 0; a < agents; a++ {
		id := fmt.Sprintf("agent-S%d", a)
		s.Agents[id] = snapshot.Agent{ID: id, Hostname: fmt.Sprintf("node%d", a), IP: fmt.Sprintf("10.1.%d.%d", a/250, a%250+1)}
	}
	s.Tasks = make([]snapshot.Task, 0, n)
	for i := 0; i < n; i++ {
		a := i % agents
		app := i / 3
		s.Tasks = append(s.Tasks, snapshot.Task{
			ID: fmt.Sprintf("app%d.%d", app, i), Name: fmt.Sprintf("app%d", app), FrameworkName: "marathon",
			AgentID: fmt.Sprintf("agent-S%d", a), AgentIP: s.Agents[fmt.Sprintf("agent-S%d", a)].IP, State: mesos.TaskRunning,
			IPs:   []string{fmt.Sprintf("172.16.%d.%d", i/250%256, i%250+1)},
			Ports: []snapshot.Port{{Number: uint32(31000 + i%1000), Protocol: "tcp", Name: "http"}},
		})
	}
	sort.Slice(s.Tasks, func(i, j int) bool { return s.Tasks[i].ID < s.Tasks[j].ID })
	return s
}

func buildOptions() dns.BuildOptions {
	return dns.BuildOptions{Domain: domain, TTL: 60, IPSources: []string{"netinfo", "mesos", "host"}}
}

// runKeel serves Keel's DNS with the bench snapshot until SIGTERM.
func runKeel(listen string, tasks int) {
	s, err := dns.New(dns.Config{Addr: listen, Domain: domain, TTL: 60, IPSources: buildOptions().IPSources})
	if err != nil {
		log.Fatal(err)
	}
	s.Update(benchSnapshot(tasks))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	log.Printf("keel: zone of %d records built, live heap %d MiB", s.Zone().Len(), ms.HeapAlloc>>20)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("DNSBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := s.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

type result struct {
	name              string
	qps, avgMs, maxMs float64
	lost              float64
	respBytes         float64
}

func run(tasks, pairs int, dur time.Duration, clients int) error {
	for _, tool := range []string{"dnsperf", "nsd", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install dnsperf nsd util-linux, or scripts/bench-deps.sh)", tool)
		}
	}
	secs := int(dur.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dnsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	zone := dns.Build(benchSnapshot(tasks), buildOptions())
	if err := writeZone(filepath.Join(dir, domain+".zone"), zone); err != nil {
		return err
	}
	queries := filepath.Join(dir, "queries.txt")
	nq, err := writeQueries(queries, zone)
	if err != nil {
		return err
	}
	kAddr, nAddr := freeAddr(), freeAddr()
	_, nPort, _ := net.SplitHostPort(nAddr)
	conf := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(conf, []byte(nsdConf(dir, nPort)), 0o644); err != nil {
		return err
	}

	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
			p.Wait()
		}
	}()
	start := func(env []string, name string, args ...string) (*exec.Cmd, error) {
		c := exec.Command(name, args...)
		c.Stderr = os.Stderr
		c.Env = append(os.Environ(), env...)
		if err := c.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		procs = append(procs, c)
		return c, nil
	}
	keelArgs := []string{"-c", "1", self, "keel", "--listen", kAddr, "--tasks", strconv.Itoa(tasks)}
	keel, err := start([]string{"GOMAXPROCS=1"}, "taskset", keelArgs...)
	if err != nil {
		return err
	}
	nsdArgs := []string{"-c", "1", "nsd", "-d", "-c", conf}
	nsd, err := start(nil, "taskset", nsdArgs...)
	if err != nil {
		return err
	}
	probe := "app0.marathon." + domain + "."
	for _, a := range []string{kAddr, nAddr} {
		if err := waitDNS(a, probe); err != nil {
			return err
		}
	}
	same, asked, diff := parity(kAddr, nAddr, queries)
	fmt.Printf("parity: %d of %d sampled queries answered alike by Keel and NSD (rcode, answer and additional records but NS glue)\n", same, asked)
	if diff != "" {
		fmt.Printf("first difference:\n%s\n", diff)
	}
	perfArgs := func(addr string) []string {
		host, port, _ := net.SplitHostPort(addr)
		return []string{"-c", "0", "dnsperf", "-s", host, "-p", port, "-c", strconv.Itoa(clients), "-l", strconv.Itoa(secs), "-d", queries}
	}
	perf := func(name, addr string, secs int) (result, error) {
		args := perfArgs(addr)
		args[len(args)-3] = strconv.Itoa(secs)
		out, err := exec.Command("taskset", args...).CombinedOutput()
		if err != nil {
			return result{}, fmt.Errorf("dnsperf: %v\n%s", err, out)
		}
		r, err := parseDnsperf(name, string(out))
		if err != nil {
			return result{}, fmt.Errorf("%w\n%s", err, out)
		}
		return r, nil
	}
	// Warm-up (fills Keel's reply cache, NSD's page cache), then alternate.
	if _, err := perf("warmup", kAddr, 2); err != nil {
		return err
	}
	if _, err := perf("warmup", nAddr, 2); err != nil {
		return err
	}
	var keels, nsds []result
	for i := 0; i < pairs; i++ {
		k, err := perf("keel", kAddr, secs)
		if err != nil {
			return err
		}
		n, err := perf("nsd", nAddr, secs)
		if err != nil {
			return err
		}
		keels, nsds = append(keels, k), append(nsds, n)
		printRow(k)
		printRow(n)
	}
	k, n := median(keels), median(nsds)
	fmt.Printf("\nmedians over %d pairs (%d tasks, %d records, %d queries in the file, %ds, %d clients):\n",
		pairs, tasks, zone.Len(), nq, secs, clients)
	printRow(k)
	printRow(n)
	fmt.Printf("\nKeel/NSD: QPS %.2f (higher is better), avg latency %.2f (lower), max latency %.2f (lower)\n",
		k.qps/n.qps, k.avgMs/n.avgMs, k.maxMs/n.maxMs)
	fmt.Printf("memory: keel RSS %d KiB; nsd RSS %d KiB (main process), PSS %d KiB (all its processes; keel PSS %d KiB)\n",
		rssKiB(keel.Process.Pid), rssKiB(nsd.Process.Pid), treePSSKiB(nsd.Process.Pid), treePSSKiB(keel.Process.Pid))
	fmt.Printf("\ncommands:\n  GOMAXPROCS=1 taskset %s\n  taskset %s\n  taskset %s   # Keel\n  taskset %s   # NSD\n",
		strings.Join(keelArgs, " "), strings.Join(nsdArgs, " "), strings.Join(perfArgs(kAddr), " "), strings.Join(perfArgs(nAddr), " "))
	return nil
}

// writeZone writes r as a master file NSD loads: every record of every
// name, as Keel serves it.
func writeZone(path string, r *dns.Records) error {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 60\n", r.Domain)
	b.WriteString(r.SOA.String() + "\n")
	for _, name := range r.Names() {
		rrs, _ := r.Lookup(name)
		for _, rr := range rrs {
			if rr.Header().Rrtype == mdns.TypeSOA {
				continue
			}
			b.WriteString(rr.String() + "\n")
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeQueries writes a dnsperf data file: 10 000 existing names (every
// A and SRV name, sampled evenly when there are more) and 10% unknown
// names under the domain, in a fixed random order. It returns the count.
func writeQueries(path string, r *dns.Records) (int, error) {
	var existing []string
	for _, name := range r.Names() {
		rrs, _ := r.Lookup(name)
		for _, rr := range rrs {
			if t := rr.Header().Rrtype; t == mdns.TypeA || t == mdns.TypeSRV {
				existing = append(existing, name+" "+mdns.TypeToString[t])
				break
			}
		}
	}
	const want = 10000
	var lines []string
	for i := 0; i < want && len(existing) > 0; i++ {
		lines = append(lines, existing[i*len(existing)/want])
	}
	for i := 0; i < want/10; i++ {
		lines = append(lines, fmt.Sprintf("unknown%d.marathon.%s A", i, r.Domain))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return len(lines), os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// nsdConf is a foreground NSD with everything in dir: one server
// process, no rate limiting, no privilege drop, no remote control. NSD's
// default (not minimal) responses are kept: they carry the A records of
// SRV targets as Keel's do, and also the NS with its glue, which Keel
// leaves out; with minimal-responses NSD 4.6 drops the SRV targets too.
func nsdConf(dir, port string) string {
	return fmt.Sprintf(`server:
  ip-address: 127.0.0.1
  port: %[2]s
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "%[1]s"
  database: ""
  zonelistfile: "%[1]s/zone.list"
  xfrdfile: "%[1]s/xfrd.state"
  xfrdir: "%[1]s"
  pidfile: "%[1]s/nsd.pid"
  logfile: "%[1]s/nsd.log"
  verbosity: 0
  rrl-ratelimit: 0
  minimal-responses: no
remote-control:
  control-enable: no
zone:
  name: %[3]s
  zonefile: "%[3]s.zone"
`, dir, port, domain)
}

func printRow(r result) {
	fmt.Printf("%-6s %10.0f QPS   avg %7.3f ms   max %7.3f ms   lost %.0f   response %.0f bytes\n", r.name, r.qps, r.avgMs, r.maxMs, r.lost, r.respBytes)
}

// median takes each figure's median across runs.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return result{name: rs[0].name, qps: pick(func(r result) float64 { return r.qps }), avgMs: pick(func(r result) float64 { return r.avgMs }),
		maxMs: pick(func(r result) float64 { return r.maxMs }), lost: pick(func(r result) float64 { return r.lost }),
		respBytes: pick(func(r result) float64 { return r.respBytes })}
}

var (
	reQPS  = regexp.MustCompile(`Queries per second:\s+([\d.]+)`)
	reLat  = regexp.MustCompile(`Average Latency \(s\):\s+([\d.]+) \(min [\d.]+, max ([\d.]+)\)`)
	reLost = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	reSize = regexp.MustCompile(`Average packet size:\s+request \d+, response (\d+)`)
)

// parseDnsperf reads QPS, latency (converted to ms) and lost queries from
// dnsperf's summary.
func parseDnsperf(name, out string) (result, error) {
	r := result{name: name}
	m := reQPS.FindStringSubmatch(out)
	l := reLat.FindStringSubmatch(out)
	if m == nil || l == nil {
		return r, fmt.Errorf("no QPS or latency in dnsperf's output")
	}
	r.qps, _ = strconv.ParseFloat(m[1], 64)
	avg, _ := strconv.ParseFloat(l[1], 64)
	mx, _ := strconv.ParseFloat(l[2], 64)
	r.avgMs, r.maxMs = avg*1000, mx*1000
	if m := reLost.FindStringSubmatch(out); m != nil {
		r.lost, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reSize.FindStringSubmatch(out); m != nil {
		r.respBytes, _ = strconv.ParseFloat(m[1], 64)
	}
	return r, nil
}

// rssKiB is VmRSS of pid, or 0 when it cannot be read.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

// treePSSKiB sums the proportional set size of pid and its descendants
// (NSD forks its server processes, which share the zone's pages).
func treePSSKiB(pid int) int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 {
			parent[p], _ = strconv.Atoi(f[1])
		}
	}
	in := func(p int) bool {
		for ; p > 1; p = parent[p] {
			if p == pid {
				return true
			}
		}
		return false
	}
	total := 0
	for p := range parent {
		if !in(p) {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				total += n
			}
		}
	}
	return total
}

// freeAddr returns a loopback address whose port is free for UDP and TCP.
func freeAddr() string {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
}

// waitDNS polls addr until it answers name, for up to 60 s (a big zone
// takes NSD a while to load).
func waitDNS(addr, name string) error {
	c := &mdns.Client{Timeout: 500 * time.Millisecond}
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) > 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never answered %s", addr, name)
}

// parity asks both servers every 20th query of the data file and compares
// the rcode and the answer and additional sections as sets (the order of
// records differs by design; the authority section and NS glue are left
// out, see nsdConf). It returns how many agreed, how many were
// asked and the first difference.
func parity(a, b, path string) (same, asked int, first string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err.Error()
	}
	c := &mdns.Client{Timeout: 2 * time.Second}
	describe := func(r *mdns.Msg) string {
		var lines []string
		for _, rr := range r.Answer {
			lines = append(lines, "AN "+rr.String())
		}
		for _, rr := range r.Extra {
			// NSD adds the NS's glue (see nsdConf); Keel does not.
			if rr.Header().Rrtype != mdns.TypeOPT && rr.Header().Name != "ns1."+domain+"." {
				lines = append(lines, "AR "+rr.String())
			}
		}
		sort.Strings(lines)
		return mdns.RcodeToString[r.Rcode] + "\n" + strings.Join(lines, "\n")
	}
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i%20 != 0 {
			continue
		}
		name, qtype, _ := strings.Cut(line, " ")
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.StringToType[qtype])
		ra, _, errA := c.Exchange(m, a)
		rb, _, errB := c.Exchange(m, b)
		asked++
		if errA != nil || errB != nil {
			if first == "" {
				first = fmt.Sprintf("%s: %v / %v", line, errA, errB)
			}
			continue
		}
		if da, db := describe(ra), describe(rb); da != db {
			if first == "" {
				first = fmt.Sprintf("%s:\nKeel: %s\nNSD:  %s", line, da, db)
			}
			continue
		}
		same++
	}
	return same, asked, first
}
