package apps

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricNames lints every metric of the package (promtool's rules) and
// checks Keel's keel_apps_<what>_<unit> naming.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	// Vectors appear only once they have a child.
	m.updates.WithLabelValues("TASK_RUNNING").Inc()
	m.requests.WithLabelValues("GET", "200").Inc()
	m.unused.WithLabelValues(reasonConstraint).Inc()
	m.readiness.WithLabelValues("ready").Inc()
	m.unreachable.WithLabelValues("inactive").Inc()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 7 {
		t.Fatalf("%d metric families, want 7", len(fams))
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "keel_apps_") {
			t.Errorf("metric %s is not keel_apps_*", f.GetName())
		}
	}
}
