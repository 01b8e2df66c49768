package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/proxy"
	"github.com/keelhq/keel/snapshot"
)

// greeting is what the "conn" backend writes before closing.
const greeting = "hello world\n"

// backendOptions configure the backend child.
type backendOptions struct {
	proto string // "http", "bulk" or "conn"
	count int    // listeners
	size  int    // HTTP response body bytes
	addrs string // file the listen addresses are written to, one a line
}

// runBackend listens on count loopback ports, writes their addresses to
// o.addrs and serves until ctx is done: fixed-size HTTP responses, an
// endless byte stream per connection (bulk) or a greeting then close
// (conn).
func runBackend(ctx context.Context, o backendOptions) error {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var addrs []string
	for i := 0; i < o.count; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("backend: %w", err)
		}
		lns = append(lns, l)
		addrs = append(addrs, l.Addr().String())
	}
	var serve func(net.Listener) error
	switch o.proto {
	case "http":
		body := []byte(strings.Repeat("x", o.size))
		srv := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) { c.Response.SetBodyRaw(body) },
			NoDefaultDate: true, ReadTimeout: time.Minute, WriteTimeout: time.Minute}
		go func() {
			<-ctx.Done()
			srv.Shutdown()
		}()
		serve = srv.Serve
	case "bulk", "conn":
		serve = func(l net.Listener) error { return serveTCP(ctx, l, o.proto) }
	default:
		return fmt.Errorf("backend: unknown --proto %q", o.proto)
	}
	tmp := o.addrs + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(addrs, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	if err := os.Rename(tmp, o.addrs); err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	errc := make(chan error, len(lns))
	for _, l := range lns {
		go func() { errc <- serve(l) }()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return fmt.Errorf("backend: %w", err)
	}
}

// serveTCP serves the L4 backends until ctx is done or l is closed.
func serveTCP(ctx context.Context, l net.Listener, proto string) error {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	chunk := make([]byte, 128<<10)
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Minute))
			if proto == "conn" {
				io.WriteString(c, greeting)
				return
			}
			for ctx.Err() == nil {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}()
	}
}

// keelOptions configure the Keel child.
type keelOptions struct {
	listen, https, certs, service string
	engine                        string // proxy.Config.HTTPEngine
	tcpEngine                     string // proxy.Config.TCPEngine
	backends                      []string
	apps                          int
}

// keelSnapshot is the fixed snapshot Keel's proxy serves: with apps > 1,
// that many apps each on its own vhost app<i>.bench.local (one task on
// backends[i%len]); else one app on bench.local with a task per backend.
// With service set (host:port), the app is instead a TCP service on that
// port.
func keelSnapshot(o keelOptions) *snapshot.Snapshot {
	s := snapshot.Empty()
	s.Generation = 1
	task := func(id, app string, backend string, labels map[string]string, servicePort int) snapshot.Task {
		host, port, _ := net.SplitHostPort(backend)
		n, _ := strconv.Atoi(port)
		return snapshot.Task{ID: id, Name: strings.TrimPrefix(app, "/"), AppID: app, AgentIP: host, State: mesos.TaskRunning,
			Ports:  []snapshot.Port{{Number: uint32(n), Protocol: "tcp", ServicePort: uint32(servicePort)}},
			Labels: labels}
	}
	if o.apps > 1 {
		for i := 0; i < o.apps; i++ {
			app := fmt.Sprintf("/app%d", i)
			s.Tasks = append(s.Tasks, task(fmt.Sprintf("app%d.1", i), app, o.backends[i%len(o.backends)],
				map[string]string{"HAPROXY_0_VHOST": vhostName(i)}, 0))
		}
		return s
	}
	labels := map[string]string{"HAPROXY_0_VHOST": "bench.local"}
	sp := 0
	if o.service != "" {
		_, port, _ := net.SplitHostPort(o.service)
		sp, _ = strconv.Atoi(port)
		labels = map[string]string{}
	}
	for i, b := range o.backends {
		s.Tasks = append(s.Tasks, task(fmt.Sprintf("bench.%04d", i), "/bench", b, labels, sp))
	}
	return s
}

// vhostName is the virtual host of app i in the vhosts case.
func vhostName(i int) string { return fmt.Sprintf("app%d.bench.local", i) }

// runKeel serves Keel's proxy with keelSnapshot(o) until ctx is done.
func runKeel(ctx context.Context, o keelOptions) error {
	bind := "127.0.0.1"
	if o.service != "" {
		bind, _, _ = net.SplitHostPort(o.service)
	}
	p, err := proxy.New(proxy.Config{HTTPAddr: o.listen, HTTPEngine: o.engine, TCPEngine: o.tcpEngine, HTTPSAddr: o.https, SSLCertsDir: o.certs, ServiceBind: bind,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	p.Update(keelSnapshot(o))
	if path := os.Getenv("PROXYBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	return p.Run(ctx)
}

// loadResult is what the tcpload child prints, as JSON.
type loadResult struct {
	Bytes   int64   `json:"bytes"`
	Conns   int64   `json:"conns"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	// FirstError is the first error seen, to tell what failed.
	FirstError string `json:"first_error,omitempty"`
}

// tcpLoad drives addr for d: in "bulk" mode conns streams each read
// what the backend sends as fast as they can; in "conn" mode conns
// workers each connect, read the greeting to EOF and close, over and
// over, timing each connection.
func tcpLoad(ctx context.Context, mode, addr string, conns int, d time.Duration) (loadResult, error) {
	if mode != "bulk" && mode != "conn" {
		return loadResult{}, fmt.Errorf("tcpload: unknown --mode %q", mode)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var bytes, count, errs atomic.Int64
	var firstErr atomic.Pointer[string]
	fail := func(err error) {
		errs.Add(1)
		msg := err.Error()
		firstErr.CompareAndSwap(nil, &msg)
	}
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	start := time.Now()
	end, _ := ctx.Deadline()
	dialer := net.Dialer{Timeout: 5 * time.Second}
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if mode == "bulk" {
				c, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					fail(err)
					return
				}
				defer c.Close()
				c.SetDeadline(end)
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					bytes.Add(int64(n))
					if err != nil {
						if !errors.Is(err, os.ErrDeadlineExceeded) {
							fail(err)
						}
						return
					}
				}
			}
			buf := make([]byte, 64)
			// The dialer stops at ctx's deadline a little before ctx.Err
			// is set: what fails at or after end is the end, not an error.
			live := func() bool { return ctx.Err() == nil && time.Now().Before(end) }
			for live() {
				t0 := time.Now()
				c, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					if live() {
						fail(err)
					}
					continue
				}
				c.SetDeadline(time.Now().Add(5 * time.Second))
				n, err := io.ReadFull(c, buf[:len(greeting)])
				c.Close()
				if err == nil && string(buf[:n]) != greeting {
					err = fmt.Errorf("read %q, want %q", buf[:n], greeting)
				}
				if err != nil {
					if live() {
						fail(err)
					}
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	r := loadResult{Bytes: bytes.Load(), Conns: count.Load(), Errors: errs.Load(), Seconds: time.Since(start).Seconds()}
	if e := firstErr.Load(); e != nil {
		r.FirstError = *e
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) > 0 {
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		ms := func(q float64) float64 { return float64(all[int(q*float64(len(all)-1))]) / 1e6 }
		r.P50ms, r.P99ms = ms(0.50), ms(0.99)
	}
	return r, nil
}

// signalContext is the children's context: done on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func printJSON(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		log.Fatal(err)
	}
}
