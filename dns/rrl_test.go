package dns

import (
	"net"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name       string
		rate, slip int
		// steps: client, offset from t0, want verdict
		steps []struct {
			ip   string
			at   time.Duration
			want verdict
		}
	}{
		{name: "burst then drop, no slip", rate: 3, slip: 0, steps: []struct {
			ip   string
			at   time.Duration
			want verdict
		}{
			{"192.0.2.1", 0, send}, {"192.0.2.1", 0, send}, {"192.0.2.1", 0, send},
			{"192.0.2.1", 0, drop}, {"192.0.2.1", 0, drop},
			// Another address of the same /24 shares the bucket.
			{"192.0.2.200", 0, drop},
			// Another /24 has its own.
			{"192.0.3.1", 0, send},
			// A third of a second later one token is back.
			{"192.0.2.1", 334 * time.Millisecond, send}, {"192.0.2.1", 334 * time.Millisecond, drop},
			// After long idleness the bucket is full again, not fuller.
			{"192.0.2.1", time.Hour, send}, {"192.0.2.1", time.Hour, send}, {"192.0.2.1", time.Hour, send}, {"192.0.2.1", time.Hour, drop},
		}},
		{name: "slip 2", rate: 1, slip: 2, steps: []struct {
			ip   string
			at   time.Duration
			want verdict
		}{
			{"192.0.2.1", 0, send}, {"192.0.2.1", 0, drop}, {"192.0.2.1", 0, slip}, {"192.0.2.1", 0, drop}, {"192.0.2.1", 0, slip},
		}},
		{name: "slip 1 truncates every withheld response", rate: 1, slip: 1, steps: []struct {
			ip   string
			at   time.Duration
			want verdict
		}{
			{"2001:db8:0:1::1", 0, send}, {"2001:db8:0:1::1", 0, slip}, {"2001:db8:0:1::1", 0, slip},
			// Same /56 (2001:db8:0:00xx::), shares the bucket; another /56 does not.
			{"2001:db8:0:ff::9", 0, slip}, {"2001:db8:0:100::1", 0, send},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.rate, tc.slip)
			for i, st := range tc.steps {
				if got := l.check(net.ParseIP(st.ip), t0.Add(st.at)); got != st.want {
					t.Fatalf("step %d (%s at +%v): verdict %d, want %d", i, st.ip, st.at, got, st.want)
				}
			}
		})
	}
	if newLimiter(0, 2) != nil {
		t.Fatal("rate 0 must turn the limiter off")
	}
}

func TestLimiterSweep(t *testing.T) {
	l := newLimiter(10, 0)
	l.maxPrefixes = 4
	t0 := time.Unix(1000, 0)
	for i := 0; i < 4; i++ {
		l.check(net.IPv4(10, 0, byte(i), 1), t0)
	}
	// A second later all have refilled: the fifth prefix sweeps them.
	l.check(net.IPv4(10, 0, 9, 1), t0.Add(time.Second))
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after sweep, want 1", len(l.buckets))
	}
}

func TestTruncated(t *testing.T) {
	req := new(mdns.Msg)
	req.SetQuestion("hello.marathon.mesos.", mdns.TypeSRV)
	req.CheckingDisabled = true
	req.SetEdns0(1232, false)
	pkt, _ := req.Pack()
	out := truncated(pkt, nil)
	m := new(mdns.Msg)
	if err := m.Unpack(out); err != nil {
		t.Fatal(err)
	}
	if !m.Response || !m.Truncated || m.Id != req.Id || !m.RecursionDesired || !m.CheckingDisabled || m.Authoritative ||
		len(m.Question) != 1 || m.Question[0] != req.Question[0] || len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 {
		t.Fatalf("truncated reply: %v", m)
	}
	if truncated([]byte{1, 2, 3}, nil) != nil {
		t.Fatal("garbage gave a reply")
	}
}

// TestRateLimitServer floods a real server from loopback: beyond the
// limit replies are dropped or slip truncated, and the metric counts them.
func TestRateLimitServer(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := startServer(t, Config{RateLimit: 5, RateLimitSlip: 2, Registerer: reg})
	s.Update(testSnapshot())
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 40
	for i := 0; i < n; i++ {
		req := new(mdns.Msg)
		req.SetQuestion("hello.marathon.mesos.", mdns.TypeA)
		req.Id = uint16(i)
		b, _ := req.Pack()
		conn.Write(b)
	}
	full, tc := 0, 0
	buf := make([]byte, 1500)
	for {
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		k, err := conn.Read(buf)
		if err != nil {
			break
		}
		m := new(mdns.Msg)
		if err := m.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		if m.Truncated {
			tc++
		} else {
			full++
		}
	}
	// 40 queries within well under a second: the burst of 5 (plus what
	// refills meanwhile) answered, about half of the rest truncated.
	if full < 5 || full > 10 || tc < (n-full)/2-1 || tc > (n-full)/2+1 {
		t.Fatalf("%d full and %d truncated replies to %d queries at 5/s with slip 2", full, tc, n)
	}
	want := float64(n - full)
	if got := counterValue(t, s.metrics.rateLimited.WithLabelValues("drop")) + counterValue(t, s.metrics.rateLimited.WithLabelValues("slip")); got != want {
		t.Fatalf("keel_dns_rate_limited_total = %v, want %v", got, want)
	}
}

// TestMetricNames lints every metric: keel_dns_ prefix, Prometheus rules.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s, err := New(Config{Addr: "127.0.0.1:0", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Touch the vectors so they are gathered.
	s.metrics.queries.WithLabelValues("A", "NOERROR").Inc()
	s.metrics.rateLimited.WithLabelValues("drop").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if !strings.HasPrefix(mf.GetName(), "keel_dns_") {
			t.Errorf("metric %s: want prefix keel_dns_", mf.GetName())
		}
	}
	if !names["keel_dns_rate_limited_total"] || !names["keel_dns_watchers"] {
		t.Errorf("missing metrics in %v", names)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
