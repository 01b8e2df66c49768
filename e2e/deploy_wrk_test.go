package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestZeroDropRollingUpgradeWrk is BENCH.md's deploy check: wrk sends
// constant load through the gateway's vhost while a 10-instance app with
// an HTTP health check is upgraded on keel dev. wrk's own counters must
// show no non-2xx response and no socket error.
func TestZeroDropRollingUpgradeWrk(t *testing.T) {
	need(t, "python3", "wrk")
	d := startDev(t, t.TempDir())
	const n = 10
	app := map[string]any{
		"id":              "/wrkweb",
		"cmd":             `echo "v$VERSION $MESOS_TASK_ID" > index.html && exec python3 -m http.server --bind 0.0.0.0 $PORT0`,
		"instances":       n,
		"cpus":            0.01,
		"mem":             32,
		"env":             map[string]string{"VERSION": "1"},
		"portDefinitions": []map[string]any{{"port": 0}},
		"labels":          map[string]string{"HAPROXY_0_VHOST": "wrk.example.com"},
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 0.8, "maximumOverCapacity": 0.2},
		"healthChecks": []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0,
			"intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30, "maxConsecutiveFailures": 3}},
	}
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	healthy := func(version string) func() error {
		return func() error {
			a, err := d.app("/wrkweb")
			if err != nil {
				return err
			}
			if a.TasksHealthy != n || len(a.Tasks) != n || len(a.Deployments) != 0 {
				return fmt.Errorf("healthy %d, tasks %d, deployments %d", a.TasksHealthy, len(a.Tasks), len(a.Deployments))
			}
			body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), "wrk.example.com")
			if err != nil || len(body) < 2 || body[:2] != version {
				return fmt.Errorf("serving %q %v, want %s", body, err, version)
			}
			return nil
		}
	}
	d.eventually("10 healthy tasks of v1", 90*time.Second, healthy("v1"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wrk := exec.CommandContext(ctx, "wrk", "-t1", "-c8", "-d15s", "--timeout", "5s", "-H", "Host: wrk.example.com",
		fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort))
	out := make(chan []byte, 1)
	go func() { b, _ := wrk.CombinedOutput(); out <- b }()
	time.Sleep(2 * time.Second) // load before the upgrade
	start := time.Now()
	if _, err := d.marathon("PUT", "/v2/apps/wrkweb", map[string]any{"env": map[string]string{"VERSION": "2"}}, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	d.eventually("the upgrade to v2 finished", 90*time.Second, healthy("v2"))
	took := time.Since(start)
	res := <-out
	t.Logf("rolling upgrade of %d instances took %v under wrk:\n%s", n, took, res)
	reqs := regexp.MustCompile(`(\d+) requests in`).FindSubmatch(res)
	if reqs == nil {
		t.Fatalf("wrk printed no request count:\n%s", res)
	}
	if total, _ := strconv.Atoi(string(reqs[1])); total < 1000 {
		t.Fatalf("only %d requests: too little load to prove anything", total)
	}
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindSubmatch(res); m != nil {
		t.Fatalf("%s non-2xx responses during the upgrade", m[1])
	}
	if m := regexp.MustCompile(`Socket errors: .*`).Find(res); m != nil {
		t.Fatalf("wrk saw socket errors during the upgrade: %s", m)
	}
	if took > 12*time.Second {
		t.Logf("note: the upgrade outlasted most of wrk's 15 s window (%v)", took)
	}
}
