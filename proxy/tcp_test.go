package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/snapshot"
)

// lineEcho is a TCP backend that answers every line at once and keeps the
// connection open until the client closes it.
func lineEcho(t *testing.T) uint32 {
	return tcpBackend(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, "echo:"+line); err != nil {
				return
			}
		}
	})
}

// lineConn is a client connection of a service port.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dialLine(t *testing.T, port uint32) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{c, bufio.NewReader(c)}
}

// roundTrip sends a line and reads the answer.
func (c *lineConn) roundTrip(s string) (string, error) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, s+"\n"); err != nil {
		return "", err
	}
	return c.r.ReadString('\n')
}

// closedWithin reports whether the proxy closes c within d, and when.
func (c *lineConn) closedWithin(d time.Duration) (time.Duration, bool) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := c.r.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return 0, false
	}
	return time.Since(start), err != nil
}

func TestTCPIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	p, _, _ := startWith(t, func(c *Config) { c.TCPIdleTimeout = idle })
	be, sp := lineEcho(t), freePort(t)
	p.Update(snap(1, task("/db", "db.1", "127.0.0.1", []uint32{be}, []uint32{sp}, nil)))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))

	quiet := dialLine(t, sp)
	if out, err := quiet.roundTrip("hello"); err != nil || out != "echo:hello\n" {
		t.Fatalf("quiet: %q %v", out, err)
	}
	busy := dialLine(t, sp)
	// The busy connection talks every idle/4 for 3 idle timeouts: it stays up.
	start := time.Now()
	for time.Since(start) < 3*idle {
		if out, err := busy.roundTrip("ping"); err != nil || out != "echo:ping\n" {
			t.Fatalf("busy connection cut after %v: %q %v", time.Since(start), out, err)
		}
		time.Sleep(idle / 4)
	}
	// The quiet one was closed by then, about idle after its last byte.
	if _, closed := quiet.closedWithin(time.Second); !closed {
		t.Fatal("idle connection not closed")
	}
	// A new connection that stays quiet is closed after about idle, not before.
	fresh := dialLine(t, sp)
	if out, err := fresh.roundTrip("x"); err != nil || out != "echo:x\n" {
		t.Fatalf("fresh: %q %v", out, err)
	}
	after, closed := fresh.closedWithin(5 * idle)
	if !closed {
		t.Fatal("idle connection not closed within 5 idle timeouts")
	}
	if after < idle*3/4 {
		t.Fatalf("idle connection closed after %v, before the %v timeout", after, idle)
	}
}

func TestTCPMaxConns(t *testing.T) {
	p, _ := startProxy(t)
	be, sp := lineEcho(t), freePort(t)
	p.Update(snap(1, task("/db", "db.1", "127.0.0.1", []uint32{be}, []uint32{sp}, map[string]string{"KEEL_0_MAX_CONNS": "2"})))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	// waitListening's own connection may still be counted: poll until two
	// connections are both served.
	var held []*lineConn
	deadline := time.Now().Add(5 * time.Second)
	for len(held) < 2 {
		c := dialLine(t, sp)
		if out, err := c.roundTrip("hi"); err == nil && out == "echo:hi\n" {
			held = append(held, c)
		} else {
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d connections served", len(held))
		}
	}
	// A third is closed without reaching the backend.
	third := dialLine(t, sp)
	if out, err := third.roundTrip("hi"); err == nil {
		t.Fatalf("third connection over KEEL_0_MAX_CONNS=2 served: %q", out)
	}
	// The first two still work; once one closes a new one is let in.
	for i, c := range held {
		if out, err := c.roundTrip("again"); err != nil || out != "echo:again\n" {
			t.Fatalf("held %d: %q %v", i, out, err)
		}
	}
	held[0].Close()
	deadline = time.Now().Add(5 * time.Second)
	for {
		c := dialLine(t, sp)
		out, err := c.roundTrip("late")
		c.Close()
		if err == nil && out == "echo:late\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a slot freed by a closed connection is not reused")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTCPMetrics moves bytes through service ports and reads the per app
// series from the proxy's registry: they exist at zero while the port is
// open, count connections and bytes each way, follow the port to another
// app, and are deleted once the app's listener and last connection are gone.
func TestTCPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := startWith(t, func(c *Config) { c.Registerer = reg })
	echo, lines := echoServer(t), lineEcho(t)
	sp, sp2 := freePort(t), freePort(t)
	listen, listen2 := fmt.Sprintf("127.0.0.1:%d", sp), fmt.Sprintf("127.0.0.1:%d", sp2)
	dbTask := task("/db", "db.1", "127.0.0.1", []uint32{echo}, []uint32{sp}, nil)
	kvTask := task("/kv", "kv.1", "127.0.0.1", []uint32{lines}, []uint32{sp2}, nil)
	// Update opens the ports before it returns: no probing connection is
	// needed (or counted).
	p.Update(snap(1, dbTask, kvTask))
	db, kv := map[string]string{"app": "/db", "listen": listen}, map[string]string{"app": "/kv", "listen": listen2}
	dir := func(labels map[string]string, d string) map[string]string {
		return map[string]string{"app": labels["app"], "listen": labels["listen"], "direction": d}
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := sample(t, reg, name, labels)
		if !ok {
			t.Fatalf("no series %s%v", name, labels)
		}
		return v
	}
	for _, name := range []string{"keel_proxy_tcp_active_connections", "keel_proxy_tcp_connections_total"} {
		if v := value(name, db); v != 0 {
			t.Fatalf("%s of an unused open port: %v", name, v)
		}
	}

	// 1 MiB in, the echo of it out.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	c, err := net.DialTimeout("tcp", listen, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	back, err := io.ReadAll(c)
	if err != nil || len(back) != len(payload)+5 || !bytes.Equal(back[5:], payload) {
		t.Fatalf("echo through the proxy: %d bytes, %v", len(back), err)
	}
	eventually(t, "bytes counted when the connection ends", func() bool {
		in, _ := sample(t, reg, "keel_proxy_tcp_bytes_total", dir(db, "in"))
		return in > 0
	})
	if in, out := value("keel_proxy_tcp_bytes_total", dir(db, "in")), value("keel_proxy_tcp_bytes_total", dir(db, "out")); in != float64(len(payload)) || out != float64(len(back)) {
		t.Fatalf("bytes in %v out %v, want %d and %d", in, out, len(payload), len(back))
	}
	if n, a := value("keel_proxy_tcp_connections_total", db), value("keel_proxy_tcp_active_connections", db); n != 1 || a != 0 {
		t.Fatalf("connections %v active %v, want 1 and 0", n, a)
	}

	// A connection open to /kv shows as active, and keeps its series
	// after /kv leaves and its listener closes, until it ends.
	held := dialLine(t, sp2)
	if out, err := held.roundTrip("hi"); err != nil || out != "echo:hi\n" {
		t.Fatalf("kv: %q %v", out, err)
	}
	if a := value("keel_proxy_tcp_active_connections", kv); a != 1 {
		t.Fatalf("active connections of /kv with one open: %v", a)
	}
	p.Update(snap(2, dbTask))
	if a, ok := sample(t, reg, "keel_proxy_tcp_active_connections", kv); !ok || a != 1 {
		t.Fatalf("/kv's open connection after its listener closed: %v %v", a, ok)
	}
	if out, err := held.roundTrip("still"); err != nil || out != "echo:still\n" {
		t.Fatalf("open connection cut when its port closed: %q %v", out, err)
	}
	held.Close()
	gone := func(app string) func() bool {
		return func() bool {
			n := 0
			for _, name := range []string{"keel_proxy_tcp_active_connections", "keel_proxy_tcp_connections_total", "keel_proxy_tcp_bytes_total"} {
				n += seriesOf(t, reg, name, map[string]string{"app": app})
			}
			return n == 0
		}
	}
	eventually(t, "/kv's series deleted after its last connection", gone("/kv"))
	if v := value("keel_proxy_tcp_connections_total", db); v != 1 {
		t.Fatalf("/db's series changed with /kv's: %v", v)
	}

	// The port passes to another app (the listener stays open): the series
	// follow the app, and go when the last app leaves.
	p.Update(snap(3, task("/db2", "db2.1", "127.0.0.1", []uint32{echo}, []uint32{sp}, nil)))
	if !gone("/db")() {
		t.Fatal("/db's series left after its port passed to /db2")
	}
	if v := value("keel_proxy_tcp_active_connections", map[string]string{"app": "/db2", "listen": listen}); v != 0 {
		t.Fatalf("/db2: %v", v)
	}
	p.Update(snap(4))
	if n := seriesOf(t, reg, "keel_proxy_tcp_active_connections", nil) + seriesOf(t, reg, "keel_proxy_tcp_connections_total", nil); n != 0 {
		t.Fatalf("%d TCP series left with no app", n)
	}
}

// TestTCPKeepAlive: with the idle timeout on, service port connections
// (both the client's and the backend's side) carry no TCP keep-alive, the
// idle timeout already closing a dead peer's; with it off they keep Go's.
func TestTCPKeepAlive(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) { checkKeepAlive(t, time.Hour, 0) })
	t.Run("no idle timeout", func(t *testing.T) { checkKeepAlive(t, -1, 1) })
}

// checkKeepAlive checks SO_KEEPALIVE on both sockets of a service port
// connection of a proxy with the TCP idle timeout idle.
func checkKeepAlive(t *testing.T, idle time.Duration, want int) {
	p, _, _ := startWith(t, func(c *Config) { c.TCPIdleTimeout = idle })
	be, sp := lineEcho(t), freePort(t)
	p.Update(snap(1, task("/db", "db.1", "127.0.0.1", []uint32{be}, []uint32{sp}, nil)))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	c := dialLine(t, sp)
	if out, err := c.roundTrip("hello"); err != nil || out != "echo:hello\n" {
		t.Fatalf("%q %v", out, err)
	}
	// The pair of waitListening's probe may still be winding down.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var got []int
		eachServiceSocket(t, p, func(fd int) {
			ka, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			if err != nil {
				ka = -1
			}
			got = append(got, ka)
		})
		if len(got) == 2 {
			for _, ka := range got {
				if ka != want {
					t.Errorf("SO_KEEPALIVE of the client's and the backend's socket: %v, want %d", got, want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d service port sockets open, want the client's and the backend's", len(got))
		}
	}
}

// eachServiceSocket calls f with the descriptor of each socket of the
// service port connections open now, of either TCP engine.
func eachServiceSocket(t *testing.T, p *Proxy, f func(fd int)) {
	t.Helper()
	if loopSockets(p, f) {
		return
	}
	p.activeMu.Lock()
	defer p.activeMu.Unlock()
	for c := range p.active {
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		raw.Control(func(fd uintptr) { f(int(fd)) })
	}
}

// dialService gives app, served by the backend port be, a new service
// port of p, and returns a connection to it.
func dialService(t *testing.T, p *Proxy, app string, be uint32) net.Conn {
	t.Helper()
	sp := freePort(t)
	p.Update(snap(1, task(app, app[1:]+".1", "127.0.0.1", []uint32{be}, []uint32{sp}, nil)))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sp), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTCPDuplex moves 32 MiB each way at once through a service port,
// with a client that reads slowly at first, so that both directions fill
// their buffers, wait for the receiver and (in the loop) turn bulk; then
// the client's half-close reaches the backend and the backend's end
// comes back. Every byte must arrive, in order.
func TestTCPDuplex(t *testing.T) {
	p, _, _ := startWith(t, nil)
	be := tcpBackend(t, func(c net.Conn) {
		io.Copy(c, c) // echo until the client's end, then end too
	})
	c := dialService(t, p, "/echo", be)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	payload := make([]byte, 32<<20)
	for i := range payload {
		payload[i] = byte(i*7 + i>>13)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	time.Sleep(300 * time.Millisecond) // let every buffer on the way fill up
	var back bytes.Buffer
	small := make([]byte, 1000)
	for back.Len() < 1<<20 { // slowly at first: small reads
		n, err := c.Read(small)
		back.Write(small[:n])
		if err != nil {
			t.Fatalf("after %d bytes: %v", back.Len(), err)
		}
	}
	if _, err := io.Copy(&back, c); err != nil {
		t.Fatalf("after %d bytes: %v", back.Len(), err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if back.Len() != len(payload) || !bytes.Equal(back.Bytes(), payload) {
		t.Fatalf("echoed %d bytes of %d, equal %v", back.Len(), len(payload), bytes.Equal(back.Bytes(), payload))
	}
}

// TestTCPConnectRetry: a service port whose first backend refuses
// connections still serves every client, through the other backend, and
// the refusing backend is counted and ejected.
func TestTCPConnectRetry(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := startWith(t, func(c *Config) { c.Registerer = reg })
	good, dead, sp := lineEcho(t), freePort(t), freePort(t)
	p.Update(snap(1, task("/db", "db.1", "127.0.0.1", []uint32{dead}, []uint32{sp}, nil),
		task("/db", "db.2", "127.0.0.1", []uint32{good}, []uint32{sp}, nil)))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	for i := 0; i < 10; i++ {
		c := dialLine(t, sp)
		if out, err := c.roundTrip("hi"); err != nil || out != "echo:hi\n" {
			t.Fatalf("connection %d: %q %v", i, out, err)
		}
		c.Close()
	}
	if v, _ := sample(t, reg, "keel_proxy_backend_errors_total", map[string]string{"app": "/db"}); v < 1 {
		t.Fatalf("backend errors of /db: %v, want the refused connects counted", v)
	}
	if v, _ := sample(t, reg, "keel_proxy_ejections_total", nil); v < 1 {
		t.Fatalf("ejections: %v, want the refusing backend ejected", v)
	}
}

// TestTCPGreetAndClose: a backend that speaks first and closes at once
// (the bench's tcpconn case) gets its greeting to the client, and the
// client sees the end, over and over.
func TestTCPGreetAndClose(t *testing.T) {
	p, _, _ := startWith(t, nil)
	be := tcpBackend(t, func(c net.Conn) { io.WriteString(c, "hello\n") })
	sp := freePort(t)
	p.Update(snap(1, task("/greet", "greet.1", "127.0.0.1", []uint32{be}, []uint32{sp}, nil)))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sp), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "hello\n" {
			t.Fatalf("connection %d: %q %v", i, b, err)
		}
	}
}

// TestTCPSlowReader: a backend that sends in small writes to a client
// that does not read for a while. The proxy must keep what the client
// cannot take yet and send it later, in order (in the loop: the bytes
// held for a full receiver, before the direction turns bulk).
func TestTCPSlowReader(t *testing.T) {
	p, _, _ := startWith(t, nil)
	payload := make([]byte, 48<<20) // more than both sockets' buffers hold
	for i := range payload {
		payload[i] = byte(i*13 + i>>11)
	}
	be := tcpBackend(t, func(c net.Conn) {
		for b := payload; len(b) > 0; {
			n := min(len(b), 1500)
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	})
	c := dialService(t, p, "/feed", be)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	time.Sleep(300 * time.Millisecond)
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, payload) {
		t.Fatalf("read %d bytes of %d (%v), equal %v", len(back), len(payload), err, bytes.Equal(back, payload))
	}
}

// failingListener fails its first accepts, as a listener out of file
// descriptors does, then accepts from the real one.
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, unix.EMFILE
	}
	return l.Listener.Accept()
}

// TestAcceptRetry: the goroutine path's accept loop counts a failed
// accept and tries again, instead of leaving the port open and dead.
func TestAcceptRetry(t *testing.T) {
	leakcheck.Check(t)
	reg := prometheus.NewRegistry()
	p, err := New(Config{ServiceBind: "127.0.0.1", TCPEngine: "go", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	be, sp := lineEcho(t), freePort(t)
	p.Update(snap(1, task("/db", "db.1", "127.0.0.1", []uint32{be}, []uint32{sp}, nil)))
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: inner}
	fl.fails.Store(3)
	l := &tcpListener{key: fmt.Sprintf("127.0.0.1:%d", sp), ln: fl}
	p.conns.Add(1)
	go p.acceptLoop(l)
	defer func() {
		fl.Close()
		p.mu.Lock()
		for _, l := range p.listeners {
			l.close()
		}
		p.mu.Unlock()
		p.conns.Wait()
	}()
	c, err := net.DialTimeout("tcp", inner.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lc := &lineConn{c, bufio.NewReader(c)}
	if out, err := lc.roundTrip("hi"); err != nil || out != "echo:hi\n" {
		t.Fatalf("after failed accepts: %q %v", out, err)
	}
	if v, _ := sample(t, reg, "keel_proxy_accept_errors_total", nil); v != 3 {
		t.Fatalf("accept errors %v, want 3", v)
	}
}

// TestTCPSwapsUnderLoad: while clients keep connecting to a service port
// and talking, the table changes the port's backends over and over. The
// listener stays open throughout and every connection is served: a swap
// never drops one in flight, and a new one always finds a backend.
func TestTCPSwapsUnderLoad(t *testing.T) {
	p, _, _ := startWith(t, nil)
	a, b, sp := lineEcho(t), lineEcho(t), freePort(t)
	snaps := []*snapshot.Snapshot{
		snap(1, task("/db", "db.a", "127.0.0.1", []uint32{a}, []uint32{sp}, nil)),
		snap(2, task("/db", "db.a", "127.0.0.1", []uint32{a}, []uint32{sp}, nil), task("/db", "db.b", "127.0.0.1", []uint32{b}, []uint32{sp}, nil)),
		snap(3, task("/db", "db.b", "127.0.0.1", []uint32{b}, []uint32{sp}, nil)),
	}
	p.Update(snaps[0])
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			n++
			p.Update(snaps[n%len(snaps)])
		}
	}()
	errs := make(chan error, 20)
	for w := 0; w < 20; w++ {
		go func() {
			for i := 0; i < 25; i++ {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sp), time.Second)
				if err != nil {
					errs <- err
					return
				}
				lc := &lineConn{c, bufio.NewReader(c)}
				for j := 0; j < 3; j++ {
					msg := fmt.Sprintf("w%d-%d-%d", w, i, j)
					if out, err := lc.roundTrip(msg); err != nil || out != "echo:"+msg+"\n" {
						c.Close()
						errs <- fmt.Errorf("%s: %q %v", msg, out, err)
						return
					}
				}
				c.Close()
			}
			errs <- nil
		}()
	}
	for w := 0; w < 20; w++ {
		if err := <-errs; err != nil {
			close(stop)
			<-swapped
			t.Fatal(err)
		}
	}
	close(stop)
	if n := <-swapped; n < 3 {
		t.Fatalf("only %d table swaps during the load", n)
	}
}
