// Command proxybench compares Keel's HTTP proxy with HAProxy by the
// protocol of ../shared/BENCH.md: the proxy under test alone on CPU 1
// (GOMAXPROCS=1 for Keel, nbthread 1 for HAProxy), backend and wrk on CPU
// 0, the two proxies run alternately against the same backend with the
// same wrk flags, and for each run: req/s, p50/p99 latency and the
// proxy's CPU time per request (user+sys from /proc before and after).
// It prints every run, the medians and the Keel/HAProxy ratios.
//
//	go run ./bench/cmd/proxybench run [--pairs 3] [--duration 10s] [--conns 50] [--size 12]
//
// The other modes are its own children: "backend" (a fasthttp server) and
// "keel" (Keel's proxy package fed a fixed snapshot, no master needed).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/proxy"
	"github.com/keelhq/keel/snapshot"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: proxybench run|backend|keel [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (backend, keel)")
	backend := fs.String("backend", "", "backend address (keel)")
	size := fs.Int("size", 12, "response body bytes (backend)")
	pairs := fs.Int("pairs", 3, "Keel/HAProxy run pairs (run)")
	duration := fs.Duration("duration", 10*time.Second, "length of one wrk run (run)")
	conns := fs.Int("conns", 50, "wrk connections (run)")
	fs.Parse(args)
	switch mode {
	case "backend":
		body := []byte(strings.Repeat("x", *size))
		log.Fatal(fasthttp.ListenAndServe(*listen, func(ctx *fasthttp.RequestCtx) { ctx.Write(body) }))
	case "keel":
		runKeel(*listen, *backend)
	case "run":
		if err := run(*pairs, *duration, *conns, *size); err != nil {
			log.Fatalf("proxybench: %v", err)
		}
	default:
		log.Fatalf("proxybench: unknown mode %q", mode)
	}
}

// runKeel serves Keel's proxy with one app routed to backend.
func runKeel(listen, backend string) {
	host, port, _ := net.SplitHostPort(backend)
	p, err := proxy.New(proxy.Config{HTTPAddr: listen, ServiceBind: "127.0.0.1"})
	if err != nil {
		log.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	s := snapshot.Empty()
	s.Generation = 1
	s.Tasks = []snapshot.Task{{ID: "bench.1", Name: "bench", AppID: "/bench", AgentIP: host, State: mesos.TaskRunning,
		Ports: []snapshot.Port{{Number: uint32(n), Protocol: "tcp"}}, Labels: map[string]string{"HAPROXY_0_VHOST": "bench.local"}}}
	p.Update(s)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("PROXYBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

type result struct {
	name            string
	rps, p50, p99   float64 // req/s, ms, ms
	requests        float64
	cpuMicrosPerReq float64
}

func run(pairs int, dur time.Duration, conns, size int) error {
	for _, tool := range []string{"wrk", "haproxy", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install wrk haproxy util-linux)", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "proxybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bAddr, kAddr, hAddr := freeAddr(), freeAddr(), freeAddr()
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
			p.Wait()
		}
	}()
	start := func(name string, args ...string) (*exec.Cmd, error) {
		c := exec.Command(name, args...)
		c.Stderr = os.Stderr
		c.Env = append(os.Environ(), "GOMAXPROCS=1")
		if err := c.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, c)
		return c, nil
	}
	if _, err := start("taskset", "-c", "0", self, "backend", "--listen", bAddr, "--size", strconv.Itoa(size)); err != nil {
		return err
	}
	keel, err := start("taskset", "-c", "1", self, "keel", "--listen", kAddr, "--backend", bAddr)
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind %s
  default_backend be
backend be
  http-reuse always
  server s1 %s
`, hAddr, bAddr)), 0o644)
	hap, err := start("taskset", "-c", "1", "haproxy", "-db", "-f", cfg)
	if err != nil {
		return err
	}
	for _, a := range []string{bAddr, kAddr, hAddr} {
		if err := waitListen(a); err != nil {
			return err
		}
	}
	wrk := func(name, addr string, pid int) (result, error) {
		before := cpuTicks(pid)
		out, err := exec.Command("taskset", "-c", "0", "wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%s", dur), "--latency",
			"-H", "Host: bench.local", "http://"+addr+"/").CombinedOutput()
		if err != nil {
			return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
		}
		r := parseWrk(name, string(out))
		if pid > 0 && r.requests > 0 {
			r.cpuMicrosPerReq = float64(cpuTicks(pid)-before) * 1e6 / clockTicks / r.requests
		}
		return r, nil
	}
	// Warm-up, then alternate.
	wrk("warmup", kAddr, 0)
	wrk("warmup", hAddr, 0)
	var keels, haps []result
	for i := 0; i < pairs; i++ {
		k, err := wrk("keel", kAddr, keel.Process.Pid)
		if err != nil {
			return err
		}
		h, err := wrk("haproxy", hAddr, hap.Process.Pid)
		if err != nil {
			return err
		}
		keels, haps = append(keels, k), append(haps, h)
		printRow(k)
		printRow(h)
	}
	direct, err := wrk("direct", bAddr, 0)
	if err != nil {
		return err
	}
	printRow(direct)
	k, h := median(keels), median(haps)
	fmt.Printf("\nmedians over %d pairs (%s, %d connections, %d-byte responses, keep-alive):\n", pairs, dur, conns, size)
	printRow(k)
	printRow(h)
	fmt.Printf("\nKeel/HAProxy: req/s %.2f (higher is better), p99 %.2f (lower), CPU per request %.2f (lower)\n",
		k.rps/h.rps, k.p99/h.p99, k.cpuMicrosPerReq/h.cpuMicrosPerReq)
	fmt.Printf("vs direct:    Keel req/s %.2f, HAProxy req/s %.2f of direct\n", k.rps/direct.rps, h.rps/direct.rps)
	return nil
}

func printRow(r result) {
	cpu := "-"
	if r.cpuMicrosPerReq > 0 {
		cpu = fmt.Sprintf("%.2f", r.cpuMicrosPerReq)
	}
	fmt.Printf("%-8s %10.0f req/s   p50 %7.3f ms   p99 %7.3f ms   CPU %6s us/req\n", r.name, r.rps, r.p50, r.p99, cpu)
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
	return result{name: rs[0].name, rps: pick(func(r result) float64 { return r.rps }), p50: pick(func(r result) float64 { return r.p50 }),
		p99: pick(func(r result) float64 { return r.p99 }), cpuMicrosPerReq: pick(func(r result) float64 { return r.cpuMicrosPerReq })}
}

var (
	reRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reReqs = regexp.MustCompile(`(\d+) requests in`)
	reLat  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
)

func parseWrk(name, out string) result {
	r := result{name: name}
	if m := reRPS.FindStringSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reReqs.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseFloat(m[1], 64)
	}
	for _, m := range reLat.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	return r
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100.0

// cpuTicks returns utime+stime of pid.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListen(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s never listened", addr)
}
