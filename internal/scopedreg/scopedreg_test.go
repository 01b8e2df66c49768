package scopedreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestScopesRegisterAgain(t *testing.T) {
	reg := prometheus.NewRegistry()
	for term := 0; term < 3; term++ {
		s := New(reg)
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "keel_test_total", Help: "x"})
		s.MustRegister(c)
		c.Add(float64(term + 1))
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != float64(term+1) {
			t.Fatalf("term %d: %v %v", term, mfs, err)
		}
		s.Close()
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("left registered: %v", mfs)
	}
}
