package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGatewayWithoutMaster runs master, agent and gateway as separate
// processes. With the master killed (-9), the gateway keeps resolving the
// app's name and routing to it from its last snapshot; restarted while
// the master is still down, it serves the state it saved.
func TestGatewayWithoutMaster(t *testing.T) {
	need(t, "dig", "python3")
	masterPort, marathonPort := freePort(t), freePort(t)
	dnsPort, httpPort, adminPort := freePort(t), freePort(t), freePort(t)
	ports := freeRange(t, 10)
	masterArgs := []string{"master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--marathon_port", fmt.Sprint(marathonPort),
		"--work_dir", t.TempDir(), "--allocation_interval", "100ms", "--local_port_min", "30400", "--local_port_max", "30499"}
	m := startKeel(t, masterArgs...)
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	startKeel(t, "agent", "--master", master, "--ip", "127.0.0.1", "--hostname", "node1", "--port", "0",
		"--work_dir", t.TempDir(), "--resources", fmt.Sprintf("cpus:1;mem:512;disk:100;ports:[%d-%d]", ports, ports+9))
	gwDir := t.TempDir()
	gwArgs := []string{"gateway", "--master", master, "--work_dir", gwDir, "--dns_addr", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"--http_addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--https_addr", "", "--admin_addr", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--service_bind", "127.0.0.1"}
	gw := startKeel(t, gwArgs...)

	d := &devCluster{t: t, marathonPort: marathonPort, dnsPort: dnsPort, httpPort: httpPort, exited: make(chan error)}
	d.eventually("marathon API up", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/ping", nil, 200)
		return err
	})
	app := map[string]any{"id": "/outage", "instances": 1, "cpus": 0.1, "mem": 32,
		"cmd":             `echo "hello from $MESOS_TASK_ID" > index.html && exec python3 -m http.server --bind 0.0.0.0 $PORT0`,
		"portDefinitions": []map[string]any{{"port": 0}}, "labels": map[string]string{"HAPROXY_0_VHOST": "outage.example.com"}}
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	d.waitRunning("/outage", 1, true)
	serving := func(when string) {
		t.Helper()
		d.eventually(when+": resolves and routes", 15*time.Second, func() error {
			out, err := d.dig("+short", "outage.marathon.mesos", "A")
			if err != nil || strings.TrimSpace(out) != "127.0.0.1" {
				return fmt.Errorf("dig: %q %v", out, err)
			}
			body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", httpPort), "outage.example.com")
			if err != nil || !strings.Contains(body, "hello from") {
				return fmt.Errorf("proxy: %q %v", body, err)
			}
			return nil
		})
	}
	serving("with the master up")
	// Let the gateway save its state (at most once a second).
	time.Sleep(1500 * time.Millisecond)

	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
	serving("with the master killed")
	for i := 0; i < 20; i++ { // and it stays so
		if out, _ := d.dig("+short", "outage.marathon.mesos", "A"); strings.TrimSpace(out) != "127.0.0.1" {
			t.Fatalf("query %d with the master down: %q", i, out)
		}
	}

	gw.cmd.Process.Signal(syscall.SIGTERM)
	<-gw.exited
	startKeel(t, gwArgs...)
	serving("gateway restarted with the master still down")
}
