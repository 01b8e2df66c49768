package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// TestQuickstart performs the README's quickstart against `keel dev`:
// deploy the example app, find it by DNS, reach it through the vhost and
// its service port, scale to 3, delete it; then restart keel dev on the
// same work dir and check the state survived, and that a clean stop
// leaves no task process behind.
func TestQuickstart(t *testing.T) {
	need(t, "dig", "curl", "python3")
	work := t.TempDir()
	d := startDev(t, work)

	app, err := os.ReadFile("../configs/examples/hello.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated)
	if err != nil {
		t.Fatal(err)
	}
	var created marathon.App
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatal(err)
	}
	if len(created.PortDefinitions) != 1 || created.PortDefinitions[0].Port < d.servicePortMin || created.PortDefinitions[0].Port > d.servicePortMin+19 {
		t.Fatalf("service port not assigned from the range: %s", out)
	}
	servicePort := created.PortDefinitions[0].Port
	// The same id again is a conflict; a bad field is a 422 naming it.
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusConflict); err != nil {
		t.Fatal(err)
	}
	bad, err := d.marathon("POST", "/v2/apps", map[string]any{"id": "/bad", "cmd": "true", "cpus": -1}, 422)
	if err != nil || !strings.Contains(string(bad), `"/cpus"`) {
		t.Fatalf("invalid app: %v %s", err, bad)
	}
	bad, err = d.marathon("POST", "/v2/apps", []byte(`{"id": "/bad",`), 422)
	if err != nil || !strings.Contains(string(bad), "Invalid JSON") {
		t.Fatalf("malformed JSON: %v %s", err, bad)
	}

	tasks := d.waitRunning("/hello", 1, true)
	hostPort := tasks[0].Ports[0]

	// DNS: A to the agent's IP, SRV with the task's host port.
	d.eventually("A record", 10*time.Second, func() error {
		return expectDig(d, []string{"+short", "hello.marathon.mesos", "A"}, "127.0.0.1")
	})
	d.eventually("SRV record", 10*time.Second, func() error {
		return expectDig(d, []string{"+short", "_hello._tcp.marathon.mesos", "SRV"}, fmt.Sprintf(" %d ", hostPort))
	})
	if out, _ := d.dig("nope.marathon.mesos", "A"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Fatalf("unknown name is not NXDOMAIN:\n%s", out)
	}
	if out, _ := d.dig("+short", "leader.mesos", "A"); strings.TrimSpace(out) != "127.0.0.1" {
		t.Fatalf("leader.mesos: %q", out)
	}

	// The vhost (with real curl) and the service port both reach the app.
	d.eventually("vhost route", 10*time.Second, func() error {
		out, err := exec.Command("curl", "-sS", "--max-time", "5", "-H", "Host: hello.example.com", fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello from "+tasks[0].ID) {
			return fmt.Errorf("curl: %v: %s", err, out)
		}
		return nil
	})
	d.eventually("service port", 10*time.Second, func() error {
		body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", servicePort), "")
		if err != nil || !strings.Contains(body, "hello from "+tasks[0].ID) {
			return fmt.Errorf("service port: %v %q", err, body)
		}
		return nil
	})

	// The three pages are served by their daemons.
	for _, u := range []struct{ url, title string }{
		{fmt.Sprintf("http://127.0.0.1:%d/", d.masterPort), "Keel cluster"},
		{fmt.Sprintf("http://127.0.0.1:%d/ui/", d.marathonPort), "Keel apps"},
		{fmt.Sprintf("http://127.0.0.1:%d/", d.adminPort), "Keel gateway"},
	} {
		if body, err := get(u.url, ""); err != nil || !strings.Contains(body, "<title>"+u.title+"</title>") {
			t.Fatalf("UI %s: %v", u.url, err)
		}
	}
	checkMetrics(t, d, "keel_dns_queries_total", "keel_proxy_requests_total", "keel_master_tasks_launched_total",
		"keel_agent_tasks_launched_total", "keel_gateway_events_total", "keel_master_tasks")

	// Scale to 3: three SRV records, requests spread over all three.
	if _, err := d.marathon("PUT", "/v2/apps/hello", map[string]any{"instances": 3}, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	tasks = d.waitRunning("/hello", 3, true)
	d.eventually("3 SRV records", 10*time.Second, func() error {
		out, _ := d.dig("+short", "_hello._tcp.marathon.mesos", "SRV")
		var ports []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 4 {
				ports = append(ports, f[2])
			}
		}
		sort.Strings(ports)
		var want []string
		for _, tk := range tasks {
			want = append(want, fmt.Sprint(tk.Ports[0]))
		}
		sort.Strings(want)
		if strings.Join(ports, ",") != strings.Join(want, ",") {
			return fmt.Errorf("SRV ports %v, want %v", ports, want)
		}
		return nil
	})
	d.eventually("requests spread over 3 tasks", 15*time.Second, func() error {
		seen := map[string]bool{}
		re := regexp.MustCompile(`hello from (\S+)`)
		for i := 0; i < 30; i++ {
			body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), "hello.example.com")
			if err != nil {
				return err
			}
			if m := re.FindStringSubmatch(body); m != nil {
				seen[m[1]] = true
			}
		}
		if len(seen) != 3 {
			return fmt.Errorf("reached %d distinct tasks: %v", len(seen), seen)
		}
		return nil
	})

	// Delete: the name goes NXDOMAIN, the routes and the listener go away.
	if _, err := d.marathon("DELETE", "/v2/apps/hello", nil, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	d.eventually("app deleted", 15*time.Second, func() error {
		_, err := d.marathon("GET", "/v2/apps/hello", nil, http.StatusNotFound)
		return err
	})
	d.eventually("name NXDOMAIN", 15*time.Second, func() error {
		out, _ := d.dig("hello.marathon.mesos", "A")
		if !strings.Contains(out, "status: NXDOMAIN") {
			return fmt.Errorf("still resolves:\n%s", out)
		}
		return nil
	})
	d.eventually("vhost gone", 10*time.Second, func() error {
		resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), "hello.example.com")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("vhost still answers %d", resp.StatusCode)
		}
		return nil
	})
	d.eventually("service port closed", 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", servicePort), time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("service port %d still accepts", servicePort)
		}
		return nil
	})

	// An app still running at shutdown: keel dev kills it and exits 0.
	marker := fmt.Sprintf("keel-e2e-%d", time.Now().UnixNano())
	linger := map[string]any{"id": "/linger", "cmd": "python3 -c 'import time; time.sleep(1000)' " + marker, "cpus": 0.1, "mem": 16, "instances": 1}
	if _, err := d.marathon("POST", "/v2/apps", linger, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	d.waitRunning("/linger", 1, false)
	// An event stream client stays attached through the shutdown.
	events, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v2/events", d.marathonPort))
	if err != nil || events.StatusCode != 200 {
		t.Fatalf("/v2/events: %v", err)
	}
	defer events.Body.Close()
	if n := countProcs(t, marker); n == 0 {
		t.Fatal("linger task process not found")
	}
	d.stop()
	if n := countProcs(t, marker); n != 0 {
		t.Fatalf("%d task processes left running after keel dev stopped", n)
	}

	// Restart on the same work dir: the app definition survived and runs again.
	d = startDev(t, work)
	d.waitRunning("/linger", 1, false)
	if _, err := d.marathon("GET", "/v2/apps/hello", nil, http.StatusNotFound); err != nil {
		t.Fatal(err)
	}
	d.stop()
}

// waitRunning waits until app has exactly n running tasks (with host
// ports when withPorts) and returns them.
func (d *devCluster) waitRunning(id string, n int, withPorts bool) []marathon.Task {
	d.t.Helper()
	var tasks []marathon.Task
	d.eventually(fmt.Sprintf("%s has %d running tasks", id, n), 60*time.Second, func() error {
		out, err := d.marathon("GET", "/v2/apps"+id, nil, http.StatusOK)
		if err != nil {
			return err
		}
		var r marathon.AppResponse
		if err := json.Unmarshal(out, &r); err != nil {
			return err
		}
		tasks = tasks[:0]
		for _, tk := range r.App.Tasks {
			if tk.State == "TASK_RUNNING" {
				tasks = append(tasks, tk)
			}
		}
		if len(tasks) != n || r.App.TasksRunning != n {
			return fmt.Errorf("%d running tasks (tasksRunning %d): %s", len(tasks), r.App.TasksRunning, out)
		}
		for _, tk := range tasks {
			if withPorts && len(tk.Ports) == 0 {
				return fmt.Errorf("task %s has no ports", tk.ID)
			}
		}
		return nil
	})
	return tasks
}

func expectDig(d *devCluster, args []string, want string) error {
	out, err := d.dig(args...)
	if err != nil || !strings.Contains(" "+strings.ReplaceAll(out, "\n", " ")+" ", want) {
		return fmt.Errorf("dig %v: %v: %q does not contain %q", args, err, out, want)
	}
	return nil
}

func httpGet(url, host string) (*http.Response, error) {
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	return client.Do(req)
}

func get(url, host string) (string, error) {
	resp, err := httpGet(url, host)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s (Host %q): %d", url, host, resp.StatusCode)
	}
	return string(b), nil
}

// countProcs counts live processes whose command line contains marker.
func countProcs(t *testing.T, marker string) int {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", marker).Output()
	if err != nil {
		return 0 // pgrep exits 1 when nothing matches
	}
	n := 0
	self := fmt.Sprint(os.Getpid())
	for _, pid := range strings.Fields(string(out)) {
		if pid != self {
			n++
		}
	}
	return n
}
