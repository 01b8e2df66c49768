package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// TestMasterRestartKeepsTasks restarts a standalone keel master (with its
// built-in apps framework) under a running app: the agent re-registers
// with its tasks, the apps framework re-subscribes with its framework ID,
// and the same task keeps running: nothing is killed or launched twice.
func TestMasterRestartKeepsTasks(t *testing.T) {
	need(t, "pgrep")
	masterPort, marathonPort, ports := freePort(t), freePort(t), freeRange(t, 10)
	work := t.TempDir()
	masterArgs := []string{"master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--marathon_port", fmt.Sprint(marathonPort),
		"--work_dir", work, "--allocation_interval", "100ms", "--local_port_min", "30100", "--local_port_max", "30199"}
	m := startKeel(t, masterArgs...)
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	startKeel(t, "agent", "--master", master, "--ip", "127.0.0.1", "--port", "0", "--work_dir", t.TempDir(),
		"--resources", fmt.Sprintf("cpus:2;mem:512;disk:100;ports:[%d-%d]", ports, ports+9))

	d := &devCluster{t: t, marathonPort: marathonPort, exited: make(chan error)}
	d.eventually("marathon API up", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/ping", nil, 200)
		return err
	})
	marker := fmt.Sprintf("keel-restart-%d", time.Now().UnixNano())
	app := map[string]any{"id": "/steady", "cmd": "python3 -c 'import time; time.sleep(1000)' " + marker, "cpus": 0.1, "mem": 16}
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	before := d.waitRunning("/steady", 1, false)[0].ID
	// The task's own process: the shell around it may still be passing
	// the agent's cgroup gate at this moment.
	proc := "python3 -c import time.*" + marker
	d.eventually("the task's process is up", 10*time.Second, func() error {
		if countProcs(t, proc) != 1 {
			return fmt.Errorf("%d task processes", countProcs(t, proc))
		}
		return nil
	})
	pids := procIDs(t, proc)

	m.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-m.exited; err != nil {
		t.Fatalf("master exit: %v", err)
	}
	startKeel(t, masterArgs...)
	waitHTTP(t, "http://"+master+"/health")
	d.eventually("marathon API back", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/ping", nil, 200)
		return err
	})
	// The agent re-registers and the framework reconciles: the one task is
	// the old one, and it stays the only one.
	d.eventually("old task adopted", 30*time.Second, func() error {
		out, err := d.marathon("GET", "/v2/apps/steady", nil, 200)
		if err != nil {
			return err
		}
		var r marathon.AppResponse
		json.Unmarshal(out, &r)
		if len(r.App.Tasks) != 1 || r.App.Tasks[0].ID != before || r.App.Tasks[0].State != "TASK_RUNNING" {
			return fmt.Errorf("tasks after restart: %s", out)
		}
		return nil
	})
	// With allocation every 100ms, a duplicate launch would show within 2s.
	d.consistently("one task, the old one", 2*time.Second, func() error {
		out, err := d.marathon("GET", "/v2/apps/steady", nil, 200)
		if err != nil {
			return err
		}
		var r marathon.AppResponse
		json.Unmarshal(out, &r)
		if len(r.App.Tasks) != 1 || r.App.Tasks[0].ID != before {
			return fmt.Errorf("task replaced or duplicated by the restart: %s", out)
		}
		return nil
	})
	if got := procIDs(t, proc); got != pids {
		t.Fatalf("task process %s before the restart, %s after", pids, got)
	}
	// keel agent leaves tasks running when it stops: clean up through the API.
	if _, err := d.marathon("DELETE", "/v2/apps/steady", nil, 200); err != nil {
		t.Fatal(err)
	}
	d.eventually("task gone", 30*time.Second, func() error {
		if n := countProcs(t, marker); n != 0 {
			return fmt.Errorf("%d task processes still running", n)
		}
		return nil
	})
}

// TestAgentKill9KeepsTasks kills -9 a keel agent under a running app and
// starts it again on the same work dir: it re-attaches to the task (same
// process), the master and the apps framework see the same task running,
// nothing is launched twice, and a later kill still works.
func TestAgentKill9KeepsTasks(t *testing.T) {
	need(t, "pgrep")
	masterPort, marathonPort, ports := freePort(t), freePort(t), freeRange(t, 10)
	startKeel(t, "master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--marathon_port", fmt.Sprint(marathonPort),
		"--work_dir", t.TempDir(), "--allocation_interval", "100ms", "--local_port_min", "30200", "--local_port_max", "30299")
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	agentDir := t.TempDir()
	agentArgs := []string{"agent", "--master", master, "--ip", "127.0.0.1", "--port", "0", "--work_dir", agentDir,
		"--resources", fmt.Sprintf("cpus:2;mem:512;disk:100;ports:[%d-%d]", ports, ports+9)}
	ag := startKeel(t, agentArgs...)

	d := &devCluster{t: t, marathonPort: marathonPort, exited: make(chan error)}
	d.eventually("marathon API up", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/ping", nil, 200)
		return err
	})
	marker := fmt.Sprintf("keel-agent-restart-%d", time.Now().UnixNano())
	app := map[string]any{"id": "/survivor", "cmd": "python3 -c 'import time; time.sleep(1000)' " + marker, "cpus": 0.1, "mem": 16}
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	before := d.waitRunning("/survivor", 1, false)[0].ID
	proc := "python3 -c import time.*" + marker // the task's own process (see above)
	d.eventually("the task's process is up", 10*time.Second, func() error {
		if countProcs(t, proc) != 1 {
			return fmt.Errorf("%d task processes", countProcs(t, proc))
		}
		return nil
	})
	pids := procIDs(t, proc)

	ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.exited
	if got := procIDs(t, proc); got != pids {
		t.Fatalf("task processes changed when the agent died: %q -> %q", pids, got)
	}
	startKeel(t, agentArgs...)
	d.consistently("same task, same process", 3*time.Second, func() error {
		out, err := d.marathon("GET", "/v2/apps/survivor", nil, 200)
		if err != nil {
			return err
		}
		var r marathon.AppResponse
		json.Unmarshal(out, &r)
		if len(r.App.Tasks) != 1 || r.App.Tasks[0].ID != before || r.App.Tasks[0].State != "TASK_RUNNING" {
			return fmt.Errorf("tasks after agent restart: %s", out)
		}
		if got := procIDs(t, proc); got != pids {
			return fmt.Errorf("task processes %q, want %q", got, pids)
		}
		return nil
	})
	if _, err := d.marathon("DELETE", "/v2/apps/survivor", nil, 200); err != nil {
		t.Fatal(err)
	}
	d.eventually("re-attached task killed", 30*time.Second, func() error {
		if n := countProcs(t, marker); n != 0 {
			return fmt.Errorf("%d task processes still running", n)
		}
		return nil
	})
}

// procIDs lists the pids of processes whose command line matches marker
// (a pgrep -f pattern).
func procIDs(t *testing.T, marker string) string {
	out, _ := exec.Command("pgrep", "-f", marker).Output()
	return strings.Join(strings.Fields(string(out)), ",")
}
