package proxy

import (
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkServe measures the request path (lookup, checks, forwarding to
// a real backend over loopback) per request, without the client side.
func BenchmarkServe(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.WriteString("ok") }}
	go srv.Serve(ln)
	defer srv.Shutdown()
	p, err := New(Config{ServiceBind: "127.0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"plain", map[string]string{"HAPROXY_0_VHOST": "b.example.com"}},
		{"sticky+hsts+limits", map[string]string{"HAPROXY_0_VHOST": "b.example.com", "HAPROXY_0_STICKY": "true", "HAPROXY_0_USE_HSTS": "true",
			"KEEL_0_MAX_CONNS": "100", "KEEL_0_PATH_REWRITE": "/a:/b"}},
	} {
		p.Update(snap(1, task("/b", "b.1", "127.0.0.1", []uint32{port}, nil, c.labels)))
		b.Run(c.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			remote := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5555}
			cookie := "mesosphere_server_id=" + stickyCookie(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
			b.ReportAllocs()
			for b.Loop() {
				req.Reset()
				req.SetRequestURI("/a/x?y=1")
				req.Header.SetHost("b.example.com")
				req.Header.Set("Cookie", cookie)
				ctx.Init(&req, remote, nil)
				p.serveHTTP(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
		})
	}
}
