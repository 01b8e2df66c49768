package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestTwoNodeCluster runs a master, two agents on their own addresses
// (127.0.0.11 and 127.0.0.12: two "nodes" on loopback) and a gateway, all
// as separate processes. An app spread over both nodes resolves to both
// node IPs and the gateway's proxy reaches every task on both.
func TestTwoNodeCluster(t *testing.T) {
	need(t, "dig", "python3")
	masterPort, marathonPort := freePort(t), freePort(t)
	dnsPort, httpPort, adminPort := freePort(t), freePort(t), freePort(t)
	ports := freeRange(t, 20)
	startKeel(t, "master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--marathon_port", fmt.Sprint(marathonPort),
		"--work_dir", t.TempDir(), "--allocation_interval", "100ms", "--local_port_min", "30300", "--local_port_max", "30399")
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	for i, ip := range []string{"127.0.0.11", "127.0.0.12"} {
		// Room for two tasks each, so the app spreads over both nodes.
		startKeel(t, "agent", "--master", master, "--ip", ip, "--hostname", fmt.Sprintf("node%d", i+1), "--port", "0",
			"--work_dir", t.TempDir(), "--resources", fmt.Sprintf("cpus:0.2;mem:256;disk:100;ports:[%d-%d]", ports+10*i, ports+10*i+9))
	}
	startKeel(t, "gateway", "--master", master, "--work_dir", t.TempDir(), "--dns_addr", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"--http_addr", fmt.Sprintf("127.0.0.1:%d", httpPort), "--admin_addr", fmt.Sprintf("127.0.0.1:%d", adminPort),
		"--service_bind", "127.0.0.1")

	d := &devCluster{t: t, marathonPort: marathonPort, dnsPort: dnsPort, httpPort: httpPort, exited: make(chan error)}
	d.eventually("marathon API up", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/ping", nil, 200)
		return err
	})
	app := map[string]any{"id": "/spread", "instances": 4, "cpus": 0.1, "mem": 32,
		"cmd":             `echo "hello from $MESOS_TASK_ID on $HOST" > index.html && exec python3 -m http.server --bind 0.0.0.0 $PORT0`,
		"portDefinitions": []map[string]any{{"port": 0}}, "labels": map[string]string{"HAPROXY_0_VHOST": "spread.example.com"}}
	if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	tasks := d.waitRunning("/spread", 4, true)
	hosts := map[string]int{}
	for _, tk := range tasks {
		hosts[tk.Host]++
	}
	if hosts["node1"] != 2 || hosts["node2"] != 2 {
		t.Fatalf("tasks per node: %v", hosts)
	}
	d.eventually("A records of both nodes", 10*time.Second, func() error {
		out, _ := d.dig("+short", "spread.marathon.mesos", "A")
		ips := strings.Fields(out)
		sort.Strings(ips)
		if strings.Join(ips, ",") != "127.0.0.11,127.0.0.12" {
			return fmt.Errorf("A records %v", ips)
		}
		return nil
	})
	d.eventually("proxy reaches all 4 tasks on both nodes", 20*time.Second, func() error {
		seen := map[string]bool{}
		re := regexp.MustCompile(`hello from (\S+) on (\S+)`)
		for i := 0; i < 40; i++ {
			body, err := get(fmt.Sprintf("http://127.0.0.1:%d/", httpPort), "spread.example.com")
			if err != nil {
				return err
			}
			if m := re.FindStringSubmatch(body); m != nil {
				seen[m[1]+"@"+m[2]] = true
			}
		}
		if len(seen) != 4 {
			return fmt.Errorf("reached %v", seen)
		}
		return nil
	})
	// Each task is the python server on its host port; none may be left.
	servers := 0
	for _, tk := range tasks {
		servers += countProcs(t, fmt.Sprintf("http.server --bind 0.0.0.0 %d", tk.Ports[0]))
	}
	if servers != 4 {
		t.Fatalf("found %d task processes before the delete, want 4", servers)
	}
	if _, err := d.marathon("DELETE", "/v2/apps/spread", nil, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	d.eventually("tasks gone", 30*time.Second, func() error {
		for _, tk := range tasks {
			if n := countProcs(t, fmt.Sprintf("http.server --bind 0.0.0.0 %d", tk.Ports[0])); n != 0 {
				return fmt.Errorf("task %s still running", tk.ID)
			}
		}
		return nil
	})
}
