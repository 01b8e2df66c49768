package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a keel child process with its output kept for failures.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	exited chan error
}

// startKeel runs `keel args...` until the test ends.
func startKeel(t testing.TB, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(keel(t), args...), exited: make(chan error, 1)}
	w := syncBuffer{&p.mu, &p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(15 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if args[0] == "agent" {
			for i, a := range args {
				if a == "--work_dir" && i+1 < len(args) {
					killSandboxProcesses(args[i+1])
				}
			}
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("keel %s output:\n%s", args[0], p.out.String())
			p.mu.Unlock()
		}
	})
	return p
}

// TestExampleFramework runs examples/framework, a framework written only
// against the Mesos v1 HTTP API, on keel master + keel agent started as
// separate processes.
func TestExampleFramework(t *testing.T) {
	masterPort := freePort(t)
	ports := freeRange(t, 10)
	startKeel(t, "master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--apps=false",
		"--work_dir", t.TempDir(), "--allocation_interval", "100ms")
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	startKeel(t, "agent", "--master", master, "--ip", "127.0.0.1", "--port", "0", "--work_dir", t.TempDir(),
		"--resources", fmt.Sprintf("cpus:1;mem:512;disk:100;ports:[%d-%d]", ports, ports+9))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "run", "../examples/framework", "--master", master, "--timeout", "60s").CombinedOutput()
	if err != nil {
		t.Fatalf("example framework failed: %v\n%s", err, out)
	}
	for _, want := range []string{"subscribed", "TASK_RUNNING", "TASK_KILLED", "done"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("framework output lacks %q:\n%s", want, out)
		}
	}
	// TEARDOWN removed the framework; the master keeps running.
	waitHTTP(t, "http://"+master+"/health")
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not up: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
