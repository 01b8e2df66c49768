package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOutlier(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		at      time.Duration
		fail    bool // else a success
		ejected bool // the step ejects
		until   time.Duration
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"three failures eject for 1s", []step{{0, true, false, 0}, {1, true, false, 0}, {2, true, true, 2 + time.Second}}},
		{"a success resets the streak", []step{{0, true, false, 0}, {1, true, false, 0}, {2, false, false, 0}, {3, true, false, 0}, {4, true, false, 0}}},
		{"failing again after coming back doubles", []step{
			{0, true, false, 0}, {0, true, false, 0}, {0, true, true, time.Second},
			{500 * time.Millisecond, true, false, time.Second}, // in flight while ejected: no extension
			{time.Second, true, true, 3 * time.Second},
			{3 * time.Second, true, true, 7 * time.Second},
			{7 * time.Second, true, true, 15 * time.Second},
			{15 * time.Second, true, true, 31 * time.Second},
			{31 * time.Second, true, true, 61 * time.Second}, // capped at 30s
			{61 * time.Second, true, true, 91 * time.Second},
		}},
		{"success after an ejection starts over at 1s", []step{
			{0, true, false, 0}, {0, true, false, 0}, {0, true, true, time.Second},
			{time.Second, true, true, 3 * time.Second},
			{3 * time.Second, false, false, 3 * time.Second},
			{4 * time.Second, true, false, 3 * time.Second}, {4 * time.Second, true, false, 3 * time.Second},
			{4 * time.Second, true, true, 5 * time.Second},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var o outlier
			for i, s := range c.steps {
				ejected := false
				if s.fail {
					ejected = o.failure(at(s.at))
				} else {
					o.success()
				}
				if ejected != s.ejected {
					t.Fatalf("step %d: ejected %v, want %v", i, ejected, s.ejected)
				}
				wantUntil := int64(0)
				if s.until != 0 {
					wantUntil = at(s.until).UnixNano()
				}
				if got := o.until.Load(); got != wantUntil {
					t.Fatalf("step %d: ejected until %v, want %v", i, time.Unix(0, got).Sub(t0), s.until)
				}
				if s.until != 0 && (o.available(at(s.until).UnixNano()-1) || !o.available(at(s.until).UnixNano())) {
					t.Fatalf("step %d: availability around the ejection's end", i)
				}
			}
		})
	}
}

func TestOutlierEjection(t *testing.T) {
	reg := prometheus.NewRegistry()
	p, url, _ := startWith(t, func(c *Config) { c.Registerer = reg })
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "good") }))
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad", 500) }))
	defer bad.Close()
	port := func(s *httptest.Server) uint32 {
		n, _ := strconv.Atoi(s.URL[strings.LastIndexByte(s.URL, ':')+1:])
		return uint32(n)
	}
	labels := map[string]string{"HAPROXY_0_VHOST": "o.example.com"}
	p.Update(snap(1, task("/o", "o.1", "127.0.0.1", []uint32{port(bad)}, nil, labels), task("/o", "o.2", "127.0.0.1", []uint32{port(good)}, nil, labels)))
	mux := http.NewServeMux()
	p.RegisterAdmin(mux)
	admin := httptest.NewServer(mux)
	defer admin.Close()
	badAddr := fmt.Sprintf("127.0.0.1:%d", port(bad))
	status := func() BackendStatus {
		t.Helper()
		resp, err := http.Get(admin.URL + "/v1/backends")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Backends []BackendStatus }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		for _, b := range out.Backends {
			if b.Addr == badAddr {
				return b
			}
		}
		t.Fatalf("%s not in /v1/backends: %+v", badAddr, out)
		return BackendStatus{}
	}

	// Round robin: the bad backend answers every other request until its
	// third 500 ejects it.
	fails := 0
	for i := 0; i < 6; i++ {
		if code, _ := get(t, url+"/", "o.example.com", nil); code == 500 {
			fails++
		}
	}
	if fails != 3 {
		t.Fatalf("%d 500s before the ejection, want 3", fails)
	}
	s := status()
	if s.State != "ejected" || s.ConsecutiveFailures != 3 || s.EjectedUntil == nil || s.Ejections != 1 {
		t.Fatalf("after 3 failures: %+v", s)
	}
	if n := counter(t, reg, "keel_proxy_ejections_total"); n != 1 {
		t.Fatalf("keel_proxy_ejections_total = %v", n)
	}
	for i := 0; i < 4; i++ {
		if code, body := get(t, url+"/", "o.example.com", nil); code != 200 || body != "good" {
			t.Fatalf("while ejected: %d %q", code, body)
		}
	}
	// After a second it is tried again; failing, it is ejected for two.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := get(t, url+"/", "o.example.com", nil)
		if code == 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ejected backend never tried again")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s = status()
	if s.State != "ejected" || s.Ejections != 2 || s.ConsecutiveFailures != 4 || time.Until(*s.EjectedUntil) <= time.Second {
		t.Fatalf("second ejection: %+v (until in %v)", s, time.Until(*s.EjectedUntil))
	}
}

// counter returns the value of an unlabelled counter in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
