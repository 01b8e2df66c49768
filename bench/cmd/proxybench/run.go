package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kind is what a case loads the proxies with.
type kind int

const (
	kindHTTP    kind = iota // wrk
	kindTCPBulk             // tcpload bulk streams
	kindTCPConn             // tcpload connection churn
)

// spec is one benchmark case.
type spec struct {
	name       string
	kind       kind
	size       int  // HTTP response body bytes
	conns      int  // wrk connections or tcpload workers
	close      bool // a new connection per request
	tls        bool // the proxies terminate TLS
	apps       int  // > 1: that many vhosts, one app each
	oneHost    bool // with apps: wrk asks for the last vhost only, not a random one
	backends   int  // backend listeners (tasks of the one app)
	vhostStyle string
}

func (s spec) units() units {
	switch s.kind {
	case kindTCPBulk:
		return bulkUnits
	case kindTCPConn:
		return connUnits
	}
	return httpUnits
}

// options are the run mode's flags.
type options struct {
	pairs      int
	duration   time.Duration
	warmup     time.Duration
	conns      int
	size       int
	streams    int
	vhostStyle string
	keep       bool
	engine     string // Keel's HTTP engine
	tcpEngine  string // Keel's TCP engine
}

// caseNames are the cases of BENCH.md in the order "all" runs them.
var caseNames = []string{"keepalive", "keepalive-c1000", "keepalive-16k", "keepalive-1m", "newconn", "tls", "tls-newconn",
	"vhosts10k", "vhosts10k-one", "backends1000", "tcpbulk", "tcpconn"}

// specs returns the cases that name stands for.
func specs(name string, o options) ([]spec, error) {
	if name == "all" {
		var out []spec
		for _, n := range caseNames {
			s, err := specs(n, o)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	}
	base := spec{name: name, kind: kindHTTP, size: 12, conns: o.conns, backends: 1, vhostStyle: o.vhostStyle}
	switch name {
	case "keepalive":
		base.size = o.size
	case "keepalive-c1000":
		base.conns = 1000
	case "keepalive-16k":
		base.size = 16 << 10
	case "keepalive-1m":
		base.size = 1 << 20
	case "newconn":
		base.close = true
	case "tls":
		base.tls = true
	case "tls-newconn":
		base.tls, base.close = true, true
	case "vhosts10k":
		base.apps = 10000
	case "vhosts10k-one":
		base.apps, base.oneHost = 10000, true
	case "backends1000":
		base.backends = 1000
	case "tcpbulk":
		base.kind, base.conns = kindTCPBulk, o.streams
	case "tcpconn":
		base.kind = kindTCPConn
	default:
		return nil, fmt.Errorf("unknown case %q (want all or one of %s)", name, strings.Join(caseNames, ", "))
	}
	return []spec{base}, nil
}

// floor reports whether the case also loads the floor relay: plain HTTP
// keep-alive to one backend, the only traffic the relay carries.
func (s spec) floor() bool {
	return s.kind == kindHTTP && !s.close && !s.tls && s.apps <= 1 && s.backends == 1
}

// describe says what a case measures, for its heading.
func (s spec) describe() string {
	switch s.kind {
	case kindTCPBulk:
		return fmt.Sprintf("TCP bulk download through a service port, %d streams", s.conns)
	case kindTCPConn:
		return fmt.Sprintf("new TCP connections through a service port (connect, %d-byte greeting, close), %d workers", len(greeting), s.conns)
	}
	d := fmt.Sprintf("HTTP, %d-byte responses, %d connections", s.size, s.conns)
	if s.close {
		d += ", a new connection per request"
	} else {
		d += ", keep-alive"
	}
	if s.tls {
		d += ", TLS terminated by the proxy (ECDSA P-256)"
	}
	switch {
	case s.apps > 1 && s.oneHost:
		d += fmt.Sprintf(", %d vhosts (HAProxy: %s), wrk asking for the last one only", s.apps, s.vhostStyle)
	case s.apps > 1:
		d += fmt.Sprintf(", %d vhosts (HAProxy: %s), wrk rotating Host at random", s.apps, s.vhostStyle)
	}
	if s.backends > 1 {
		d += fmt.Sprintf(", one vhost with %d backends (roundrobin)", s.backends)
	}
	return d
}

// proc is a child process of a case.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// runCase runs one case: backend, Keel and HAProxy (and the floor relay
// when s.floor()) started, checked, then loaded alternately, and the
// figures printed.
func runCase(ctx context.Context, self string, s spec, o options) error {
	dir, err := os.MkdirTemp("", "proxybench-"+s.name+"-")
	if err != nil {
		return err
	}
	if o.keep {
		defer fmt.Printf("files kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			stop(p)
		}
	}()
	start := func(args ...string) (*proc, error) {
		c := exec.Command(args[0], args[1:]...)
		c.Stderr = os.Stderr
		c.Env = append(os.Environ(), "GOMAXPROCS=1")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return nil, err
		}
		p := &proc{cmd: c, done: make(chan struct{})}
		go func() {
			p.err = c.Wait()
			close(p.done)
		}()
		procs = append(procs, p)
		return p, nil
	}
	avg, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n== %s: %s\n(load average %s)\n", s.name, s.describe(), strings.Join(strings.Fields(string(avg))[:min(3, len(strings.Fields(string(avg))))], " "))

	proto := "http"
	switch s.kind {
	case kindTCPBulk:
		proto = "bulk"
	case kindTCPConn:
		proto = "conn"
	}
	addrFile := filepath.Join(dir, "backends")
	backendArgs := []string{"backend", "--proto", proto, "--count", strconv.Itoa(s.backends), "--size", strconv.Itoa(s.size), "--addrs", addrFile}
	bp, err := start(append([]string{"taskset", "-c", "0", self}, backendArgs...)...)
	if err != nil {
		return err
	}
	backends, err := waitAddrs(ctx, addrFile, bp)
	if err != nil {
		return err
	}
	kAddr, hAddr := freeAddr(), freeAddr()
	keelArgs := []string{"keel", "--backends", addrFile, "--engine", o.engine, "--tcp_engine", o.tcpEngine}
	var cert string
	switch {
	case s.kind != kindHTTP:
		keelArgs = append(keelArgs, "--service", kAddr)
	case s.tls:
		certDir := filepath.Join(dir, "certs")
		cert = filepath.Join(certDir, "default.pem")
		if err := os.Mkdir(certDir, 0o755); err != nil {
			return err
		}
		if err := writeCert(cert); err != nil {
			return err
		}
		keelArgs = append(keelArgs, "--https", kAddr, "--certs", certDir)
	default:
		keelArgs = append(keelArgs, "--listen", kAddr)
	}
	if s.apps > 1 {
		keelArgs = append(keelArgs, "--apps", strconv.Itoa(s.apps))
	}
	cfg, err := haproxyConfig(dir, s, hAddr, backends, cert)
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "haproxy", "-c", "-q", "-f", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy rejects %s: %v\n%s", cfg, err, out)
	}
	keel, err := start(append([]string{"taskset", "-c", "1", self}, keelArgs...)...)
	if err != nil {
		return err
	}
	hap, err := start("taskset", "-c", "1", "haproxy", "-db", "-f", cfg)
	if err != nil {
		return err
	}
	type target struct {
		addr string
		p    *proc
	}
	waits := []target{{backends[0], bp}, {kAddr, keel}, {hAddr, hap}}
	// The floor relay, pinned like the proxies.
	var fAddr string
	var relayArgs []string
	var floor *proc
	if s.floor() {
		fAddr = freeAddr()
		relayArgs = []string{"relay", "--listen", fAddr, "--backends", addrFile}
		if floor, err = start(append([]string{"taskset", "-c", "1", self}, relayArgs...)...); err != nil {
			return err
		}
		waits = append(waits, target{fAddr, floor})
	}
	for _, w := range waits {
		if err := waitListen(ctx, w.addr, w.p); err != nil {
			return err
		}
	}

	// The load commands, the same for every target but the address.
	var script string
	if s.apps > 1 && !s.oneHost {
		script = filepath.Join(dir, "rotate.lua")
		if err := os.WriteFile(script, []byte(rotateLua(s.apps)), 0o644); err != nil {
			return err
		}
	}
	loadArgs := func(addr string, secure bool, d time.Duration) []string {
		if s.kind != kindHTTP {
			mode := "bulk"
			if s.kind == kindTCPConn {
				mode = "conn"
			}
			return []string{"taskset", "-c", "0", self, "tcpload", "--mode", mode, "--addr", addr,
				"--conns", strconv.Itoa(s.conns), "--duration", d.String()}
		}
		a := []string{"taskset", "-c", "0", "wrk", "-t1", fmt.Sprintf("-c%d", s.conns), fmt.Sprintf("-d%ds", int(d.Round(time.Second)/time.Second)), "--latency"}
		if s.close {
			a = append(a, "-H", "Connection: close")
		}
		switch {
		case script != "":
			a = append(a, "-s", script)
		case s.apps > 1:
			a = append(a, "-H", "Host: "+vhostName(s.apps-1))
		default:
			a = append(a, "-H", "Host: bench.local")
		}
		scheme := "http"
		if secure {
			scheme = "https"
		}
		return append(a, scheme+"://"+addr+"/")
	}
	show := func(args []string) string {
		out := make([]string, len(args))
		for i, a := range args {
			if a == self {
				a = "proxybench"
			}
			if strings.Contains(a, " ") {
				a = "'" + a + "'"
			}
			out[i] = a
		}
		return strings.Join(out, " ")
	}
	keepNote := "; --keep keeps the files named here"
	if o.keep {
		keepNote = ""
	}
	fmt.Printf("commands (proxybench = go build ./bench/cmd/proxybench; GOMAXPROCS=1 for the Go processes%s):\n", keepNote)
	fmt.Printf("  backend: %s\n", show(append([]string{"taskset", "-c", "0", self}, backendArgs...)))
	fmt.Printf("  keel:    %s\n", show(append([]string{"taskset", "-c", "1", self}, keelArgs...)))
	fmt.Printf("  haproxy: taskset -c 1 haproxy -db -f %s (HAProxy %s)\n", cfg, haproxyVersion(ctx))
	if floor != nil {
		fmt.Printf("  floor:   %s (a bare epoll relay, not a proxy)\n", show(append([]string{"taskset", "-c", "1", self}, relayArgs...)))
	}
	fmt.Printf("  load:    %s\n", show(loadArgs("ADDR", s.tls, o.duration)))
	fmt.Printf("  ADDR:    keel %s, haproxy %s, direct %s (plain, no proxy)\n", kAddr, hAddr, backends[0])

	// Check every target answers right before timing anything.
	type probeTarget struct {
		name, addr string
		secure     bool
	}
	probes := []probeTarget{{"keel", kAddr, s.tls}, {"haproxy", hAddr, s.tls}, {"direct", backends[0], false}}
	if floor != nil {
		probes = append(probes, probeTarget{"floor", fAddr, false})
	}
	for _, t := range probes {
		if err := probe(ctx, s, t.addr, t.secure); err != nil {
			return fmt.Errorf("%s at %s: %w", t.name, t.addr, err)
		}
	}

	u := s.units()
	load := func(name, addr string, p *proc, secure bool, d time.Duration) (result, error) {
		var before int64
		if p != nil {
			var err error
			if before, err = cpuTicks(p.cmd.Process.Pid); err != nil {
				return result{}, err
			}
		}
		args := loadArgs(addr, secure, d)
		c := exec.CommandContext(ctx, args[0], args[1:]...)
		c.Env = append(os.Environ(), "GOMAXPROCS=1")
		out, err := c.CombinedOutput()
		if err != nil {
			return result{}, fmt.Errorf("%s: %v\n%s", show(args), err, out)
		}
		var r result
		if s.kind == kindHTTP {
			if r, err = parseWrk(name, string(out)); err != nil {
				return r, err
			}
		} else {
			var lr loadResult
			if err := json.Unmarshal(bytes.TrimSpace(out), &lr); err != nil {
				return r, fmt.Errorf("tcpload output %q: %w", out, err)
			}
			r = result{name: name, errors: int(lr.Errors), p50: lr.P50ms, p99: lr.P99ms}
			if s.kind == kindTCPBulk {
				r.units = float64(lr.Bytes) / (1 << 30)
			} else {
				r.units = float64(lr.Conns)
			}
			r.rate = r.units / lr.Seconds
		}
		if r.units == 0 {
			return r, fmt.Errorf("%s served nothing: %s\n%s", name, show(args), out)
		}
		if p != nil {
			after, err := cpuTicks(p.cmd.Process.Pid)
			if err != nil {
				return r, err
			}
			r.cpu = float64(after-before) / clockTicks / r.units * u.cpuScale
		}
		return r, nil
	}
	if _, err := load("warmup", kAddr, nil, s.tls, o.warmup); err != nil {
		return err
	}
	if _, err := load("warmup", hAddr, nil, s.tls, o.warmup); err != nil {
		return err
	}
	if floor != nil {
		if _, err := load("warmup", fAddr, nil, false, o.warmup); err != nil {
			return err
		}
	}
	var keels, haps, floors []result
	for i := 0; i < o.pairs; i++ {
		k, err := load("keel", kAddr, keel, s.tls, o.duration)
		if err != nil {
			return err
		}
		fmt.Println(u.row(k))
		h, err := load("haproxy", hAddr, hap, s.tls, o.duration)
		if err != nil {
			return err
		}
		fmt.Println(u.row(h))
		keels, haps = append(keels, k), append(haps, h)
		if floor != nil {
			f, err := load("floor", fAddr, floor, false, o.duration)
			if err != nil {
				return err
			}
			fmt.Println(u.row(f))
			floors = append(floors, f)
		}
	}
	direct, err := load("direct", backends[0], nil, false, o.duration)
	if err != nil {
		return err
	}
	fmt.Println(u.row(direct))
	k, h := median(keels), median(haps)
	fmt.Printf("medians over %d pairs of %s:\n%s\n%s\n", o.pairs, o.duration, u.row(k), u.row(h))
	var f result
	if floor != nil {
		f = median(floors)
		fmt.Println(u.row(f))
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	fmt.Printf("Keel/HAProxy: %s %s (higher is better)", u.rate, ratio(k.rate, h.rate))
	if u.latency {
		fmt.Printf(", p99 %s (lower)", ratio(k.p99, h.p99))
	}
	fmt.Printf(", CPU per %s %s (lower)\n", u.per, ratio(k.cpu, h.cpu))
	fmt.Printf("vs direct:    %s Keel %s, HAProxy %s of direct", u.rate, ratio(k.rate, direct.rate), ratio(h.rate, direct.rate))
	if u.latency {
		fmt.Printf("; p99 Keel %s, HAProxy %s of direct", ratio(k.p99, direct.p99), ratio(h.p99, direct.p99))
	}
	fmt.Println()
	children := []*proc{keel, hap, bp}
	if floor != nil {
		fmt.Printf("vs floor:     CPU per %s Keel %s, HAProxy %s of the floor relay\n",
			u.per, ratio(k.cpu, f.cpu), ratio(h.cpu, f.cpu))
		children = append(children, floor)
	}
	for _, p := range children {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during the run: %v", p.cmd.Args, p.err)
		default:
		}
	}
	if k.errors > 0 || h.errors > 0 || direct.errors > 0 {
		fmt.Printf("WARNING: errors during the timed runs: keel %d, haproxy %d, direct %d\n", k.errors, h.errors, direct.errors)
	}
	if f.errors > 0 {
		fmt.Printf("WARNING: errors during the floor relay's timed runs: %d\n", f.errors)
	}
	return nil
}

// rotateLua is wrk's script for the vhosts case: each request to a random
// one of the apps' hosts.
func rotateLua(apps int) string {
	return fmt.Sprintf(`-- proxybench: each request to a random one of %d vhosts
math.randomseed(1)
request = function()
  return wrk.format(nil, "/", {["Host"] = "app" .. math.random(0, %d) .. ".bench.local"})
end
`, apps, apps-1)
}

// probe checks that addr answers the case's load correctly.
func probe(ctx context.Context, s spec, addr string, secure bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch s.kind {
	case kindTCPBulk:
		r, err := tcpLoad(ctx, "bulk", addr, 1, 300*time.Millisecond)
		if err == nil && (r.Bytes == 0 || r.Errors > 0) {
			err = fmt.Errorf("bulk probe: %+v", r)
		}
		return err
	case kindTCPConn:
		r, err := tcpLoad(ctx, "conn", addr, 1, 300*time.Millisecond)
		if err == nil && (r.Conns == 0 || r.Errors > 0) {
			err = fmt.Errorf("connection probe: %+v", r)
		}
		return err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	hosts := []string{"bench.local"}
	if s.apps > 1 {
		hosts = []string{vhostName(0), vhostName(s.apps / 2), vhostName(s.apps - 1)}
	}
	for _, h := range hosts {
		// With several backends, walk the round robin far enough to pass
		// more than one.
		for i := 0; i < min(s.backends, 3)+1; i++ {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/", nil)
			req.Host = h
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK || n != int64(s.size) {
				return fmt.Errorf("GET Host %s: status %d, %d body bytes, want 200 and %d", h, resp.StatusCode, n, s.size)
			}
		}
	}
	return nil
}

func haproxyVersion(ctx context.Context) string {
	out, _ := exec.CommandContext(ctx, "haproxy", "-v").Output()
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "?"
}

// stop ends a child: SIGTERM, then SIGKILL after five seconds.
func stop(p *proc) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitAddrs waits for the backend's address file.
func waitAddrs(ctx context.Context, path string, p *proc) ([]string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return strings.Fields(string(b)), nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("backend exited: %v", p.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, errors.New("backend wrote no addresses in 30s")
		}
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListen waits until addr accepts connections, or p exits.
func waitListen(ctx context.Context, addr string, p *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.cmd.Args, p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s never listened on %s", p.cmd.Args, addr)
}
