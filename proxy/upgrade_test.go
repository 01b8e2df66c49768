package proxy

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsEchoServer is a minimal WebSocket server (RFC 6455, text frames under
// 126 bytes): it answers the handshake by hand and echoes each frame with
// the X-Forwarded-Proto it was reached by. A request for /refuse gets 403.
func wsEchoServer(t *testing.T) uint32 {
	return tcpBackend(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/refuse" || !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") ||
			!strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") {
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\nConnection: close\r\n\r\nrefused")
			return
		}
		proto := req.Header.Get("X-Forwarded-Proto")
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			wsAccept(req.Header.Get("Sec-WebSocket-Key")))
		for {
			msg, err := readFrame(br)
			if err != nil {
				return
			}
			if _, err := c.Write(frame(proto+":"+msg, false)); err != nil {
				return
			}
		}
	})
}

// frame encodes a text frame, masked as a client must send it.
func frame(msg string, masked bool) []byte {
	b := []byte{0x81, byte(len(msg))}
	if !masked {
		return append(b, msg...)
	}
	mask := []byte{1, 2, 3, 4}
	b[1] |= 0x80
	b = append(b, mask...)
	for i := 0; i < len(msg); i++ {
		b = append(b, msg[i]^mask[i%4])
	}
	return b
}

func readFrame(r io.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", err
	}
	n := int(h[1] & 0x7f)
	var mask [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return "", err
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	if h[1]&0x80 != 0 {
		for i := range b {
			b[i] ^= mask[i%4]
		}
	}
	return string(b), nil
}

// wsDial performs the client side of the handshake over c.
func wsDial(t *testing.T, c net.Conn, host, path string) (*bufio.Reader, *http.Response) {
	t.Helper()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host, key)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 101 && resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("Sec-WebSocket-Accept %q", resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return br, resp
}

func TestWebSocket(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ws.pem"), genCert(t, "ws", "ws.example.com"))
	p, httpURL, httpsURL := startWith(t, func(c *Config) { c.HTTPSAddr, c.SSLCertsDir = "auto", dir })
	ws := wsEchoServer(t)
	p.Update(snap(1, task("/ws", "ws.1", "127.0.0.1", []uint32{ws}, nil, map[string]string{"HAPROXY_0_VHOST": "ws.example.com", "KEEL_0_MAX_CONNS": "1"})))
	dials := []struct {
		name  string
		dial  func() (net.Conn, error)
		proto string
	}{
		{"http", func() (net.Conn, error) {
			return net.DialTimeout("tcp", strings.TrimPrefix(httpURL, "http://"), 5*time.Second)
		}, "http"},
		{"https", func() (net.Conn, error) {
			return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", strings.TrimPrefix(httpsURL, "https://"),
				&tls.Config{ServerName: "ws.example.com", InsecureSkipVerify: true})
		}, "https"},
	}
	for _, d := range dials {
		t.Run(d.name, func(t *testing.T) {
			c, err := d.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br, resp := wsDial(t, c, "ws.example.com", "/chat")
			if resp.StatusCode != 101 {
				t.Fatalf("handshake: %d", resp.StatusCode)
			}
			// Several messages both ways over the one tunnel.
			for _, msg := range []string{"hello", "again", strings.Repeat("x", 100)} {
				if _, err := c.Write(frame(msg, true)); err != nil {
					t.Fatal(err)
				}
				got, err := readFrame(br)
				if err != nil || got != d.proto+":"+msg {
					t.Fatalf("echo of %q: %q %v", msg, got, err)
				}
			}
			// The open tunnel holds the route's only connection slot.
			if resp, _ := do(t, "GET", httpURL+"/", "ws.example.com", nil); resp.StatusCode != 503 {
				t.Fatalf("plain request while the tunnel is open: %d, want 503 (max conns 1)", resp.StatusCode)
			}
			c.Close()
			deadline := time.Now().Add(5 * time.Second)
			for p.table.Load().routes[0].active.Load() != 0 {
				if time.Now().After(deadline) {
					t.Fatal("closed tunnel still counted")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	// A backend that declines the upgrade: its answer is relayed.
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(httpURL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, resp := wsDial(t, c, "ws.example.com", "/refuse")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || string(body) != "refused" {
		t.Fatalf("refused upgrade: %d %q", resp.StatusCode, body)
	}
}
