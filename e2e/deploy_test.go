package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// TestZeroDropRollingUpgrade changes the definition of a 3-instance app
// with an HTTP health check while four keep-alive clients send requests
// through its virtual host without pause: the rolling upgrade replaces
// every task, and not one request fails.
func TestZeroDropRollingUpgrade(t *testing.T) {
	need(t, "python3")
	d := startDev(t, t.TempDir())
	app := map[string]any{
		"id":              "/web",
		"cmd":             `echo "v$VERSION $MESOS_TASK_ID" > index.html && exec python3 -m http.server --bind 0.0.0.0 $PORT0`,
		"instances":       3,
		"cpus":            0.1,
		"mem":             32,
		"env":             map[string]string{"VERSION": "1"},
		"portDefinitions": []map[string]any{{"port": 0}},
		"labels":          map[string]string{"HAPROXY_0_VHOST": "web.example.com"},
		"healthChecks": []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0,
			"intervalSeconds": 1, "timeoutSeconds": 1, "gracePeriodSeconds": 30, "maxConsecutiveFailures": 3}},
	}
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	old := map[string]bool{}
	d.eventually("3 healthy tasks", 60*time.Second, func() error {
		a, err := d.app("/web")
		if err != nil {
			return err
		}
		if a.TasksHealthy != 3 {
			return fmt.Errorf("%d healthy", a.TasksHealthy)
		}
		for _, tk := range a.Tasks {
			old[tk.ID] = true
		}
		return nil
	})
	d.eventually("vhost routes", 10*time.Second, func() error {
		_, err := get(fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), "web.example.com")
		return err
	})

	var ok, bad, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), nil)
				req.Host = "web.example.com"
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // load before the upgrade starts
	if _, err := d.marathon("PUT", "/v2/apps/web", map[string]any{"env": map[string]string{"VERSION": "2"}}, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	d.eventually("upgrade finished", 90*time.Second, func() error {
		a, err := d.app("/web")
		if err != nil {
			return err
		}
		if len(a.Deployments) != 0 || a.TasksHealthy != 3 || len(a.Tasks) != 3 {
			return fmt.Errorf("deployments %d, healthy %d, tasks %d", len(a.Deployments), a.TasksHealthy, len(a.Tasks))
		}
		for _, tk := range a.Tasks {
			if old[tk.ID] {
				return fmt.Errorf("old task %s still there", tk.ID)
			}
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // and load after it
	close(stop)
	wg.Wait()
	t.Logf("rolling upgrade under load: %d ok, %d non-2xx, %d errors", ok.Load(), bad.Load(), failed.Load())
	if bad.Load() != 0 || failed.Load() != 0 || ok.Load() < 100 {
		t.Fatalf("requests dropped during the upgrade: %d ok, %d non-2xx, %d errors", ok.Load(), bad.Load(), failed.Load())
	}
	body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), "web.example.com")
	if err != nil || body[:2] != "v2" {
		t.Fatalf("after the upgrade: %q %v", body, err)
	}
	d.marathon("DELETE", "/v2/apps/web", nil, http.StatusOK)
}

// app fetches one app with its tasks.
func (d *devCluster) app(id string) (marathon.App, error) {
	out, err := d.marathon("GET", "/v2/apps"+id, nil, http.StatusOK)
	if err != nil {
		return marathon.App{}, err
	}
	var r marathon.AppResponse
	err = json.Unmarshal(out, &r)
	return r.App, err
}
