//go:build linux

package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// loopSockets calls f, on the TCP loop's goroutine, with each socket of
// the connections the loop serves, and reports whether p has a TCP loop.
func loopSockets(p *Proxy, f func(fd int)) bool {
	p.mu.Lock()
	t := p.tloop
	p.mu.Unlock()
	if t == nil {
		return false
	}
	t.do(func() {
		for fd := range t.ends {
			f(fd)
		}
	})
	return true
}

// TestTLoopHoldsForFullReceiver drives one direction of a pair by hand
// over socket pairs: small reads that the receiver cannot take are kept
// (pend) while it is full and sent, in order, once it drains; a full read
// turns the direction bulk, through a pipe.
func TestTLoopHoldsForFullReceiver(t *testing.T) {
	pairOf := func() (near, far int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
		return fds[0], fds[1]
	}
	clNear, clFar := pairOf()
	beNear, beFar := pairOf()
	_ = unix.SetsockoptInt(clNear, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	p, err := New(Config{ServiceBind: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	l := &tloop{p: p, buf: make([]byte, tcpLoopBuffer)}
	defer l.pipes.close()
	pr := &tpair{}
	pr.cl = tend{fd: clNear, pr: pr, writable: true}
	pr.be = tend{fd: beNear, pr: pr, writable: true}
	d := &pr.down
	*d = tdir{from: &pr.be, to: &pr.cl}

	move := func() { l.turn = 0; l.move(pr, d) } // a turn each, as pump gives
	var sent, got []byte
	drainFar := func() {
		buf := make([]byte, 1<<20)
		for {
			n, err := unix.Read(clFar, buf)
			if n <= 0 || err != nil {
				return
			}
			got = append(got, buf[:n]...)
		}
	}
	held := false
	for i := 0; len(sent) < 4<<20; i++ {
		size := 1000
		if i > 400 {
			size = tcpLoopBuffer + 5000 // past the read buffer: bulk
		}
		chunk := make([]byte, size)
		for j := range chunk {
			chunk[j] = byte(len(sent) + j)
		}
		n, _ := unix.Write(beFar, chunk)
		if n > 0 {
			sent = append(sent, chunk[:n]...)
		}
		pr.be.readable = true
		move()
		held = held || len(d.pend) > 0
		if i%50 == 49 { // now and then the client reads
			drainFar()
			pr.cl.writable = true
			move()
		}
	}
	for k := 0; k < 100 && len(got) < len(sent); k++ {
		drainFar()
		pr.cl.writable, pr.be.readable = true, true
		move()
	}
	drainFar()
	if !held {
		t.Error("a full receiver never made the direction keep bytes")
	}
	if !d.bulk || d.pipe == nil {
		t.Errorf("full reads did not turn the direction bulk (bulk %v, pipe %v)", d.bulk, d.pipe != nil)
	}
	if d.bytes != int64(len(sent)) || !bytes.Equal(got, sent) {
		t.Fatalf("moved %d, got %d bytes of %d sent, equal %v", d.bytes, len(got), len(sent), bytes.Equal(got, sent))
	}
	if d.pipe != nil {
		l.pipes.put(d.pipe, false)
	}
}

// TestTLoopLiveBytes: the loop counts a connection's bytes while it is
// still open (at each sweep), not only when it ends.
func TestTLoopLiveBytes(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := startWith(t, func(c *Config) { c.Registerer = reg; c.TCPEngine = "loop" })
	lines, sp := lineEcho(t), freePort(t)
	p.Update(snap(1, task("/kv", "kv.1", "127.0.0.1", []uint32{lines}, []uint32{sp}, nil)))
	c := dialLine(t, sp)
	if out, err := c.roundTrip("hello"); err != nil || out != "echo:hello\n" {
		t.Fatalf("%q %v", out, err)
	}
	labels := func(d string) map[string]string {
		return map[string]string{"app": "/kv", "listen": fmt.Sprintf("127.0.0.1:%d", sp), "direction": d}
	}
	eventually(t, "the open connection's bytes counted", func() bool {
		in, _ := sample(t, reg, "keel_proxy_tcp_bytes_total", labels("in"))
		out, _ := sample(t, reg, "keel_proxy_tcp_bytes_total", labels("out"))
		return in == float64(len("hello\n")) && out == float64(len("echo:hello\n"))
	})
	if out, err := c.roundTrip("x"); err != nil || out != "echo:x\n" {
		t.Fatalf("%q %v", out, err)
	}
	c.Close()
	eventually(t, "the rest counted once, when it ends", func() bool {
		in, _ := sample(t, reg, "keel_proxy_tcp_bytes_total", labels("in"))
		out, _ := sample(t, reg, "keel_proxy_tcp_bytes_total", labels("out"))
		return in == float64(len("hello\nx\n")) && out == float64(len("echo:hello\necho:x\n"))
	})
}

// TestTLoopTakesTurns: two bulk downloads at once through a service port
// take turns of the fair share (made short, so that turns surely end),
// and both arrive whole.
func TestTLoopTakesTurns(t *testing.T) {
	old := tcpFairShare
	tcpFairShare = 64 << 10
	t.Cleanup(func() { tcpFairShare = old })
	p, _, _ := startWith(t, func(c *Config) { c.TCPEngine = "loop" })
	payload := make([]byte, 24<<20)
	for i := range payload {
		payload[i] = byte(i*31 + i>>12)
	}
	be := tcpBackend(t, func(c net.Conn) { c.Write(payload) })
	sp := freePort(t)
	p.Update(snap(1, task("/bulk", "bulk.1", "127.0.0.1", []uint32{be}, []uint32{sp}, nil)))
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", sp))
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sp), time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			got, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(got, payload) {
				err = fmt.Errorf("got %d bytes of %d, equal %v", len(got), len(payload), bytes.Equal(got, payload))
			}
			errs <- err
		}()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	l := p.tloop
	p.mu.Unlock()
	yields := 0
	l.do(func() { yields = l.yields })
	if yields == 0 {
		t.Fatal("48 MiB moved with no turn ended by the fair share")
	}
}
