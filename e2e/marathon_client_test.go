package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runMarathonClient runs examples/marathon-client, a client written only
// against Marathon's documented HTTP API, against the Marathon API at
// base, and checks it went through deploy, scale, upgrade and delete
// while seeing their events.
func runMarathonClient(t *testing.T, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "run", "../examples/marathon-client", "--marathon", base, "--timeout", "2m").CombinedOutput()
	if err != nil {
		t.Fatalf("example Marathon client failed: %v\n%s", err, out)
	}
	for _, want := range []string{"event_stream_attached", "api_post_event", "status_update_event TASK_RUNNING", "scaling to 3",
		"deployment_info", "deployment_success", "app_terminated_event", "done"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("client output lacks %q:\n%s", want, out)
		}
	}
}

// TestExampleMarathonClient runs the example Marathon client against keel dev.
func TestExampleMarathonClient(t *testing.T) {
	d := startDev(t, t.TempDir())
	runMarathonClient(t, fmt.Sprintf("http://127.0.0.1:%d", d.marathonPort))
}

// TestKeelApps runs the apps framework on its own (keel apps) against a
// keel master without its built-in one and a keel agent, all separate
// processes, and drives it with the example Marathon client.
func TestKeelApps(t *testing.T) {
	masterPort, appsPort := freePort(t), freePort(t)
	ports := freeRange(t, 20)
	startKeel(t, "master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--apps=false",
		"--work_dir", t.TempDir(), "--allocation_interval", "100ms")
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	startKeel(t, "agent", "--master", master, "--ip", "127.0.0.1", "--port", "0", "--work_dir", t.TempDir(),
		"--resources", fmt.Sprintf("cpus:2;mem:1024;disk:100;ports:[%d-%d]", ports, ports+19))
	startKeel(t, "apps", "--master", master, "--marathon_ip", "127.0.0.1", "--marathon_port", fmt.Sprint(appsPort),
		"--work_dir", t.TempDir(), "--framework_name", "marathon-alone")
	base := fmt.Sprintf("http://127.0.0.1:%d", appsPort)
	waitHTTP(t, base+"/ping")
	runMarathonClient(t, base)
}
