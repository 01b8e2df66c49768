package proxy

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/snapshot"
)

// udpEcho is a UDP backend that answers every datagram with name:payload.
func udpEcho(t *testing.T, name string) uint32 {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return uint32(pc.LocalAddr().(*net.UDPAddr).Port)
}

func freeUDPPort(t *testing.T) uint32 {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return uint32(pc.LocalAddr().(*net.UDPAddr).Port)
}

func udpTask(app, id string, port, servicePort uint32, labels map[string]string) snapshot.Task {
	tk := task(app, id, "127.0.0.1", []uint32{port}, []uint32{servicePort}, labels)
	tk.Ports[0].Protocol = "udp"
	return tk
}

// udpAsk sends payload from c to the service port until an answer comes
// (the listener may not be open yet) or the deadline passes.
func udpAsk(t *testing.T, c net.Conn, payload string) string {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.Write([]byte(payload))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return string(buf[:n])
		}
	}
	t.Fatalf("no answer to %q", payload)
	return ""
}

func dialUDP(t *testing.T, port uint32) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestUDPServicePort(t *testing.T) {
	p, _, _ := startWith(t, func(c *Config) { c.UDPIdleTimeout = 300 * time.Millisecond })
	b0, b1, sp := udpEcho(t, "b0"), udpEcho(t, "b1"), freeUDPPort(t)
	p.Update(snap(1, udpTask("/dns", "dns.0", b0, sp, nil), udpTask("/dns", "dns.1", b1, sp, nil)))

	// Each client sticks to one backend (its session); two clients are
	// spread by round robin.
	c1, c2 := dialUDP(t, sp), dialUDP(t, sp)
	first := udpAsk(t, c1, "q1")
	backend1, _, _ := strings.Cut(first, ":")
	if first != backend1+":q1" {
		t.Fatalf("answer %q", first)
	}
	for i := 0; i < 3; i++ {
		if got := udpAsk(t, c1, fmt.Sprint("again", i)); got != backend1+fmt.Sprint(":again", i) {
			t.Fatalf("client moved to another backend: %q", got)
		}
	}
	other := udpAsk(t, c2, "q2")
	if backend2, _, _ := strings.Cut(other, ":"); backend2 == backend1 {
		t.Fatalf("both clients on %s", backend1)
	}

	// Idle sessions end: their upstream sockets are closed.
	deadline := time.Now().Add(5 * time.Second)
	for sessions(p, sp) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open after the idle timeout", sessions(p, sp))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := udpAsk(t, c1, "back"); !strings.HasSuffix(got, ":back") {
		t.Fatalf("after idle: %q", got)
	}

	// The app leaves: the port closes (it can be bound again).
	p.Update(snap(2))
	deadline = time.Now().Add(5 * time.Second)
	for {
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", sp))
		if err == nil {
			pc.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("UDP service port still open after its app left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sessions counts the open sessions of a UDP service port.
func sessions(p *Proxy, port uint32) int {
	p.mu.Lock()
	l := p.listeners[fmt.Sprintf("%s127.0.0.1:%d", udpPrefix, port)]
	p.mu.Unlock()
	if l == nil || l.udp == nil {
		return -1
	}
	l.udp.mu.Lock()
	defer l.udp.mu.Unlock()
	return len(l.udp.sessions)
}

func TestUDPTable(t *testing.T) {
	both := task("/both", "both.1", "10.0.0.1", []uint32{31000}, []uint32{10053}, nil)
	both.Ports[0].Protocol = "udp,tcp"
	tb, errs := BuildTable(snap(1,
		udpTask("/u", "u.1", 31001, 10054, nil),
		udpTask("/uv", "uv.1", 31002, 10055, map[string]string{"HAPROXY_0_VHOST": "u.example.com"}),
		udpTask("/um", "um.1", 31003, 10056, map[string]string{"HAPROXY_0_MODE": "http"}),
		both,
	), TableOptions{ServiceBind: "127.0.0.1"})
	if r := tb.udp["127.0.0.1:10054"]; r == nil || r.Mode != "udp" || r.Protocol != "udp" || tb.services["127.0.0.1:10054"] != nil {
		t.Fatalf("udp port: %+v; tcp: %v", r, tb.services["127.0.0.1:10054"])
	}
	if tb.udp["127.0.0.1:10053"] == nil || tb.services["127.0.0.1:10053"] == nil || tb.udp["127.0.0.1:10053"].Protocol != "udp,tcp" {
		t.Fatal("udp,tcp port must get both listeners")
	}
	if len(errs) != 2 || errs[0].Label != "HAPROXY_0_MODE" || errs[1].Label != "HAPROXY_0_VHOST" {
		t.Fatalf("label errors: %+v", errs)
	}
	if tb.udp["127.0.0.1:10055"] != nil || tb.udp["127.0.0.1:10056"] != nil {
		t.Fatal("ports with bad labels must be skipped")
	}
}

// TestUDPMetrics counts sessions, datagrams and bytes of a UDP service
// port per app, and deletes the app's series when its port closes.
func TestUDPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, _, _ := startWith(t, func(c *Config) { c.Registerer = reg; c.UDPIdleTimeout = 300 * time.Millisecond })
	be, sp := udpEcho(t, "b0"), freeUDPPort(t)
	p.Update(snap(1, udpTask("/dns", "dns.0", be, sp, nil)))
	dns := map[string]string{"app": "/dns", "listen": fmt.Sprintf("127.0.0.1:%d", sp)}
	dir := func(d string) map[string]string {
		return map[string]string{"app": dns["app"], "listen": dns["listen"], "direction": d}
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		v, ok := sample(t, reg, name, labels)
		if !ok {
			t.Fatalf("no series %s%v", name, labels)
		}
		return v
	}
	if v := value("keel_proxy_udp_active_sessions", dns); v != 0 {
		t.Fatalf("active sessions of an unused open port: %v", v)
	}

	// The port is open once Update returns: each datagram is sent once,
	// so the counts are exact.
	c := dialUDP(t, sp)
	buf := make([]byte, 64)
	for _, q := range []string{"q1", "q22"} {
		if _, err := c.Write([]byte(q)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "b0:"+q {
			t.Fatalf("answer to %s: %q %v", q, buf[:n], err)
		}
	}
	eventually(t, "the second reply counted", func() bool {
		v, _ := sample(t, reg, "keel_proxy_udp_datagrams_total", dir("out"))
		return v == 2
	})
	for _, w := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"keel_proxy_udp_sessions_total", dns, 1},
		{"keel_proxy_udp_active_sessions", dns, 1},
		{"keel_proxy_udp_datagrams_total", dir("in"), 2},
		{"keel_proxy_udp_bytes_total", dir("in"), 5},
		{"keel_proxy_udp_bytes_total", dir("out"), 11},
	} {
		if v := value(w.name, w.labels); v != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, v, w.want)
		}
	}
	eventually(t, "the idle session ends", func() bool { return value("keel_proxy_udp_active_sessions", dns) == 0 })

	// When the app leaves, its port closes and ends its sessions; then
	// its series go.
	if got := udpAsk(t, c, "late"); got != "b0:late" {
		t.Fatalf("after idle: %q", got)
	}
	p.Update(snap(2))
	eventually(t, "/dns's series deleted", func() bool {
		n := 0
		for _, name := range []string{"keel_proxy_udp_sessions_total", "keel_proxy_udp_active_sessions", "keel_proxy_udp_datagrams_total", "keel_proxy_udp_bytes_total"} {
			n += seriesOf(t, reg, name, nil)
		}
		return n == 0
	})
}
