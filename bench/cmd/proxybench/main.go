// Command proxybench compares Keel's proxy with HAProxy by the protocol
// of ../shared/BENCH.md, for every proxy case it lists: the proxy under
// test alone on CPU 1 (GOMAXPROCS=1 for Keel, nbthread 1 for HAProxy),
// backend and load generator on CPU 0, the two proxies loaded alternately
// (A B A B) against the same backend with the same load, then the
// backend directly (the limit). For each run it prints the rate (req/s,
// connections/s or GiB/s), p50/p99 latency and the proxy's CPU time per
// request, connection or GiB (user+sys from /proc before and after); then
// the medians, the Keel/HAProxy ratios, both against direct, and the
// exact commands to rerun any of it.
//
// The plain keep-alive cases (keepalive, keepalive-c1000, keepalive-16k,
// keepalive-1m) load a third peer in the same alternation (Keel, HAProxy,
// floor, Keel, ...), pinned and measured like the proxies: the floor
// relay, a featureless single-threaded epoll relay that copies each
// request and response unchanged. It is not a proxy; its CPU per request
// is the least a user-space relay spends here, almost all of it kernel
// time in the socket calls, and "vs floor" prints both proxies' CPU per
// request over it.
//
//	go run ./bench/cmd/proxybench run [--case all] [--pairs 3] [--duration 10s]
//
// Cases (--case, or all in this order): keepalive (--size, --conns),
// keepalive-c1000, keepalive-16k, keepalive-1m, newconn (Connection:
// close), tls and tls-newconn (TLS terminated by the proxy, a self-signed
// ECDSA certificate), vhosts10k (10 000 apps each on its own vhost, wrk
// rotating Host at random), vhosts10k-one (the same table, wrk asking for
// one vhost: the lookup without the connection pools' spread), backends1000 (one vhost, 1000 backends),
// tcpbulk (GiB/s through a service port, --streams) and tcpconn (new TCP
// connections per second through a service port).
//
// The other modes are its own children: "backend" (HTTP, bulk or
// connection backends on one or many ports), "keel" (Keel's proxy package
// fed a fixed snapshot, no master needed), "relay" (the floor relay,
// --listen and --backends) and "tcpload" (the L4 load generator). It
// exits non-zero only when a case could not run.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/keelhq/keel/proxy"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: proxybench run|backend|keel|relay|tcpload [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	// run
	cases := fs.String("case", "keepalive", "case to run, or all: "+strings.Join(caseNames, ", "))
	pairs := fs.Int("pairs", 3, "Keel/HAProxy run pairs, triples with the floor relay (run)")
	duration := fs.Duration("duration", 10*time.Second, "length of one timed run (run, tcpload)")
	warmup := fs.Duration("warmup", time.Second, "untimed run against each proxy before the pairs (run)")
	conns := fs.Int("conns", 50, "wrk connections, tcpconn workers (run, tcpload)")
	size := fs.Int("size", 12, "response body bytes (run --case keepalive, backend)")
	streams := fs.Int("streams", 4, "concurrent streams of tcpbulk (run)")
	vhostStyle := fs.String("haproxy_vhosts", "map", "how HAProxy routes vhosts10k: map (a host map) or acl (marathon-lb's ACL per host)")
	engine := fs.String("engine", proxy.DefaultHTTPEngine, "Keel's HTTP engine: loop or fasthttp (run, keel)")
	tcpEngine := fs.String("tcp_engine", proxy.DefaultTCPEngine, "Keel's TCP service port engine: loop or go (run, keel)")
	keep := fs.Bool("keep", false, "keep each case's files (HAProxy config, certificate, wrk script) to rerun it (run)")
	// children
	proto := fs.String("proto", "http", "http, bulk or conn (backend)")
	count := fs.Int("count", 1, "listeners (backend)")
	addrs := fs.String("addrs", "", "file the listen addresses are written to (backend)")
	listen := fs.String("listen", "", "HTTP listen address (keel, relay)")
	https := fs.String("https", "", "HTTPS listen address (keel)")
	certs := fs.String("certs", "", "certificate directory (keel)")
	service := fs.String("service", "", "TCP service address, instead of vhosts (keel)")
	backendsFile := fs.String("backends", "", "file of backend addresses, one a line (keel, relay)")
	apps := fs.Int("apps", 1, "apps, each on its own vhost app<i>.bench.local, when > 1 (keel)")
	loadMode := fs.String("mode", "bulk", "bulk or conn (tcpload)")
	addr := fs.String("addr", "", "address to load (tcpload)")
	fs.Parse(args)

	ctx, stop := signalContext()
	defer stop()
	var err error
	switch mode {
	case "backend":
		err = runBackend(ctx, backendOptions{proto: *proto, count: *count, size: *size, addrs: *addrs})
	case "keel":
		var b []byte
		if b, err = os.ReadFile(*backendsFile); err == nil {
			err = runKeel(ctx, keelOptions{listen: *listen, https: *https, certs: *certs, service: *service, engine: *engine,
				tcpEngine: *tcpEngine, backends: strings.Fields(string(b)), apps: *apps})
		}
	case "relay":
		var b []byte
		if b, err = os.ReadFile(*backendsFile); err == nil {
			err = runRelay(ctx, relayOptions{listen: *listen, backends: strings.Fields(string(b))})
		}
	case "tcpload":
		var r loadResult
		if r, err = tcpLoad(ctx, *loadMode, *addr, *conns, *duration); err == nil {
			printJSON(r)
		}
	case "run":
		o := options{pairs: *pairs, duration: *duration, warmup: *warmup, conns: *conns, size: *size, streams: *streams,
			vhostStyle: *vhostStyle, keep: *keep, engine: *engine, tcpEngine: *tcpEngine}
		err = run(*cases, o)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		stop()
		log.Fatalf("proxybench %s: %v", mode, err)
	}
}

// run runs the cases name stands for, each to its end even when an
// earlier one failed, and fails if any could not run.
func run(name string, o options) error {
	for _, tool := range []string{"wrk", "haproxy", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (scripts/bench-deps.sh installs it)", tool)
		}
	}
	if o.pairs < 1 || o.duration < time.Second || o.warmup < time.Second {
		return fmt.Errorf("--pairs must be at least 1, --duration and --warmup at least 1s")
	}
	if o.vhostStyle != "map" && o.vhostStyle != "acl" {
		return fmt.Errorf("--haproxy_vhosts must be map or acl")
	}
	ss, err := specs(name, o)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	var failed []string
	for _, s := range ss {
		if err := runCase(ctx, self, s, o); err != nil {
			fmt.Printf("CASE %s COULD NOT RUN: %v\n", s.name, err)
			failed = append(failed, s.name)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("cases that could not run: %s", strings.Join(failed, ", "))
	}
	return nil
}
