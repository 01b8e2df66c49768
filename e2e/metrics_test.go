package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// checkMetrics scrapes the admin /metrics of a running keel dev, lints
// every metric (promtool's rules) and checks that Keel's own metrics follow
// keel_<component>_<what>_<unit> and that the counters an operator needs
// first are there.
func checkMetrics(t *testing.T, d *devCluster, want ...string) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", d.adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	problems, families, err := lint(resp)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	for _, name := range families {
		if !strings.HasPrefix(name, "keel_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %s is outside the keel_ namespace", name)
		}
	}
	have := strings.Join(families, " ") + " "
	for _, w := range want {
		if !strings.Contains(have, w+" ") {
			t.Errorf("metric %s missing from /metrics", w)
		}
	}
}

func lint(resp *http.Response) ([]promlint.Problem, []string, error) {
	body := new(strings.Builder)
	if _, err := io.Copy(body, resp.Body); err != nil {
		return nil, nil, err
	}
	problems, err := promlint.New(strings.NewReader(body.String())).Lint()
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, line := range strings.Split(body.String(), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			names = append(names, strings.Fields(line)[2])
		}
	}
	return problems, names, nil
}
