package proxy

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// scraped is one counter or gauge series of a scrape.
type scraped struct {
	labels map[string]string
	value  float64
}

// scrape returns the counter and gauge series of name that g exports now.
// Unlike WithLabelValues it never makes a series, so tests can see one
// missing.
func scrape(t *testing.T, g prometheus.Gatherer, name string) []scraped {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []scraped
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			s := scraped{labels: map[string]string{}, value: m.GetCounter().GetValue() + m.GetGauge().GetValue()}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			out = append(out, s)
		}
	}
	return out
}

// sample is the value of the series of name with exactly labels; ok is
// false when there is no such series.
func sample(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
series:
	for _, s := range scrape(t, g, name) {
		if len(s.labels) != len(labels) {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue series
			}
		}
		return s.value, true
	}
	return 0, false
}

// seriesOf counts the series of name whose labels include labels.
func seriesOf(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) int {
	t.Helper()
	n := 0
series:
	for _, s := range scrape(t, g, name) {
		for k, v := range labels {
			if s.labels[k] != v {
				continue series
			}
		}
		n++
	}
	return n
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMetricNames lints every metric of the proxy, each with a series, by
// promtool's rules.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.requests.WithLabelValues("/a", "2xx").Inc()
	m.duration.WithLabelValues("/a").Observe(0.1)
	m.backendErrors.WithLabelValues("/a").Inc()
	m.l4.acquire(l4Key{protoTCP, "/a", "127.0.0.1:1"})
	m.l4.acquire(l4Key{protoUDP, "/a", "127.0.0.1:1"})
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 21 {
		t.Errorf("%d metric families, want 21", len(fams))
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// TestL4Series: a series lives while its listener or a connection holds
// it, and is deleted, not left at zero, when the last one lets go.
func TestL4Series(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	s := m.l4
	const listen = "127.0.0.1:5000"
	a := map[string]string{"app": "/a", "listen": listen}
	b := map[string]string{"app": "/b", "listen": listen}
	active := func(labels map[string]string) (float64, bool) {
		return sample(t, reg, "keel_proxy_tcp_active_connections", labels)
	}

	s.listen(protoTCP, listen, "", "/a") // the listener opens for /a
	if v, ok := active(a); !ok || v != 0 {
		t.Fatalf("open listener: %v %v, want a series at 0", v, ok)
	}
	c := s.acquire(l4Key{protoTCP, "/a", listen}) // a connection
	c.active.Inc()
	c.bytesIn.Add(3)
	s.listen(protoTCP, listen, "/a", "/b") // the port passes to /b
	if v, ok := active(a); !ok || v != 1 {
		t.Fatalf("/a with a connection after its port moved: %v %v", v, ok)
	}
	if v, ok := active(b); !ok || v != 0 {
		t.Fatalf("/b: %v %v", v, ok)
	}
	c.active.Dec()
	s.release(l4Key{protoTCP, "/a", listen}) // the connection ends
	for _, name := range []string{"keel_proxy_tcp_active_connections", "keel_proxy_tcp_connections_total", "keel_proxy_tcp_bytes_total"} {
		if n := seriesOf(t, reg, name, map[string]string{"app": "/a"}); n != 0 {
			t.Errorf("%s: %d series of /a left", name, n)
		}
	}
	// A UDP series of the same app and address is another series.
	s.listen(protoUDP, listen, "", "/b")
	s.listen(protoTCP, listen, "/b", "") // the TCP listener closes
	if n := seriesOf(t, reg, "keel_proxy_tcp_active_connections", nil); n != 0 {
		t.Errorf("%d TCP series left after the listener closed", n)
	}
	if v, ok := sample(t, reg, "keel_proxy_udp_active_sessions", b); !ok || v != 0 {
		t.Errorf("UDP series: %v %v", v, ok)
	}
	if n := seriesOf(t, reg, "keel_proxy_udp_datagrams_total", b); n != 2 {
		t.Errorf("%d UDP datagram series, want in and out", n)
	}
	s.release(l4Key{protoTCP, "/nobody", listen}) // never held: no effect, no panic
}

// BenchmarkL4Connection is the metric bookkeeping a service port TCP
// connection adds: hold its app's series, count it open and active, add
// its bytes, let go.
func BenchmarkL4Connection(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry())
	k := l4Key{protoTCP, "/db", "127.0.0.1:5432"}
	m.l4.acquire(k) // the listener's hold
	b.ReportAllocs()
	for b.Loop() {
		c := m.l4.acquire(k)
		c.opened.Inc()
		c.active.Inc()
		c.bytesIn.Add(1 << 20)
		c.bytesOut.Add(1 << 20)
		c.active.Dec()
		m.l4.release(k)
	}
}
