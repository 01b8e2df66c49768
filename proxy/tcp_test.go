package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
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
