package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	keelBin   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if keelBin != "" {
		os.RemoveAll(filepath.Dir(keelBin))
	}
	os.Exit(code)
}

// killSandboxProcesses kills every process whose working directory is under
// dir: what a stopped keel agent (which leaves its tasks running, by
// design) still runs when a test ends early.
func killSandboxProcesses(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err == nil && strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// keel builds the keel binary once per test run.
func keel(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keel-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		keelBin = filepath.Join(dir, "keel")
		args := []string{"build", "-o", keelBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "../cmd/keel")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return keelBin
}

// need fails the test with a clear message when a tool is missing (the
// README's test command installs them).
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run 'make test' (it installs the test dependencies) or install it", tool)
		}
	}
}

// freePort returns a TCP port free on 127.0.0.1 whose UDP twin is free too.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		l.Close()
		if err == nil {
			u.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// freeRange returns the start of n consecutive free TCP ports.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for start := 21000 + int(time.Now().UnixNano()%5000); start < 29000; start += n {
		ok := true
		for p := start; p < start+n && ok; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return start
		}
	}
	t.Fatal("no free port range")
	return 0
}

// devCluster is a running `keel dev`.
type devCluster struct {
	t                                 *testing.T
	cmd                               *exec.Cmd
	log                               *bytes.Buffer
	logMu                             *sync.Mutex
	workDir                           string
	masterPort, marathonPort, dnsPort int
	httpPort, adminPort               int
	servicePortMin                    int
	exited                            chan error
}

type syncBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (s syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// startDev starts `keel dev` on free ports with its state in workDir;
// extra flags come last, so they override the defaults here.
func startDev(t *testing.T, workDir string, extra ...string) *devCluster {
	t.Helper()
	d := &devCluster{t: t, log: &bytes.Buffer{}, logMu: &sync.Mutex{}, workDir: workDir,
		masterPort: freePort(t), marathonPort: freePort(t), dnsPort: freePort(t), httpPort: freePort(t), adminPort: freePort(t),
		servicePortMin: freeRange(t, 20), exited: make(chan error, 1)}
	agentPorts := freeRange(t, 50)
	args := []string{"dev", "--work_dir", workDir,
		"--port", fmt.Sprint(d.masterPort), "--marathon_port", fmt.Sprint(d.marathonPort), "--agent_port", "0",
		"--dns_addr", fmt.Sprintf("127.0.0.1:%d", d.dnsPort), "--http_addr", fmt.Sprintf("127.0.0.1:%d", d.httpPort),
		"--admin_addr", fmt.Sprintf("127.0.0.1:%d", d.adminPort),
		"--local_port_min", fmt.Sprint(d.servicePortMin), "--local_port_max", fmt.Sprint(d.servicePortMin + 19),
		"--resources", fmt.Sprintf("cpus:4;mem:4096;disk:4096;ports:[%d-%d]", agentPorts, agentPorts+49),
		"--allocation_interval", "100ms", "--log_level", "debug", "--https_addr", ""}
	d.cmd = exec.Command(keel(t), append(args, extra...)...)
	w := syncBuffer{d.logMu, d.log}
	d.cmd.Stdout, d.cmd.Stderr = w, w
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		// Stop it the way a user does, so it kills its tasks; SIGKILL only
		// if that hangs.
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Signal(os.Interrupt)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Signal(syscall.SIGKILL)
				<-d.exited
			}
		}
		if t.Failed() {
			d.logMu.Lock()
			t.Logf("keel dev output:\n%s", d.log.String())
			d.logMu.Unlock()
		}
	})
	d.eventually("marathon API up", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/v2/apps", nil, 200)
		return err
	})
	return d
}

// stop sends SIGINT and waits for a clean exit.
func (d *devCluster) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-d.exited:
		if err != nil {
			d.t.Fatalf("keel dev exited with %v after SIGINT", err)
		}
	case <-time.After(30 * time.Second):
		d.t.Fatal("keel dev did not exit within 30s of SIGINT")
	}
}

// eventually polls fn until it returns nil or the timeout passes.
func (d *devCluster) eventually(what string, timeout time.Duration, fn func() error) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		select {
		case e := <-d.exited:
			d.t.Fatalf("%s: keel dev exited: %v", what, e)
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consistently checks fn again and again for the whole window and fails at
// the first error: for asserting that something does not happen.
func (d *devCluster) consistently(what string, window time.Duration, fn func() error) {
	d.t.Helper()
	end := time.Now().Add(window)
	for time.Now().Before(end) {
		if err := fn(); err != nil {
			d.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// marathon calls the Marathon API and checks the status code.
func (d *devCluster) marathon(method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case []byte:
			rd = bytes.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, fmt.Sprintf("http://127.0.0.1:%d%s", d.marathonPort, path), rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return out, fmt.Errorf("%s %s: got %d want %d: %s", method, path, resp.StatusCode, want, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// dig runs the real dig against the cluster's DNS and returns its output.
func (d *devCluster) dig(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all := append([]string{"@127.0.0.1", "-p", fmt.Sprint(d.dnsPort), "+tries=1", "+time=2"}, args...)
	out, err := exec.CommandContext(ctx, "dig", all...).CombinedOutput()
	return string(out), err
}

var raceEnabled = runtime.GOOS == "never" // replaced by race_test.go under -race
