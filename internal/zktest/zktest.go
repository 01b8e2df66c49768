// Package zktest starts real Apache ZooKeeper servers for tests: one
// standalone server or an ensemble, on 127.0.0.1 with free ports, each in its
// own directory under t.TempDir(). Every server can be stopped, killed with
// SIGKILL and started again on the same ports and data.
//
// It runs Debian's zookeeper package with the machine's java. When either is
// missing the test fails (never skips) and says how to install them. It owns
// nothing but the processes it starts; they are killed in t.Cleanup.
package zktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// installHint is what a test says when ZooKeeper cannot run here.
const installHint = "zookeeper not installed: run make test-deps / scripts/test-deps.sh"

// JarDir is where Debian's zookeeper package puts its jars and their
// dependencies.
const JarDir = "/usr/share/java"

// startTimeout bounds how long a server may take to answer "ruok".
const startTimeout = 60 * time.Second

// Cluster is a set of ZooKeeper servers started by Start or StartEnsemble.
type Cluster struct {
	t       testing.TB
	java    string
	servers []*server
}

type server struct {
	id         int
	dir        string
	clientPort int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start starts one standalone ZooKeeper server and waits until it serves.
func Start(t testing.TB) *Cluster { t.Helper(); return StartEnsemble(t, 1) }

// StartEnsemble starts n servers forming one ensemble (n = 1 is a
// standalone server) and waits until every one of them serves requests.
func StartEnsemble(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("zktest: ensemble of %d servers", n)
	}
	java, err := Installed()
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	ports, err := freePorts(3 * n)
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	root := t.TempDir()
	c := &Cluster{t: t, java: java}
	var peers strings.Builder
	if n > 1 {
		for i := 0; i < n; i++ {
			fmt.Fprintf(&peers, "server.%d=127.0.0.1:%d:%d\n", i+1, ports[3*i+1], ports[3*i+2])
		}
	}
	for i := 0; i < n; i++ {
		s := &server{id: i + 1, dir: filepath.Join(root, fmt.Sprintf("zk%d", i+1)), clientPort: ports[3*i]}
		if err := s.writeConfig(peers.String()); err != nil {
			t.Fatalf("zktest: %v", err)
		}
		c.servers = append(c.servers, s)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			s.signal(syscall.SIGKILL)
			s.wait()
		}
	})
	for _, s := range c.servers {
		if err := s.start(java); err != nil {
			t.Fatalf("zktest: %v", err)
		}
	}
	for _, s := range c.servers {
		if err := s.waitServing(startTimeout); err != nil {
			t.Fatalf("zktest: %v", err)
		}
	}
	return c
}

// Installed reports the java binary to use, or why ZooKeeper cannot run.
func Installed() (string, error) { return installed(JarDir) }

func installed(jarDir string) (string, error) {
	if _, err := os.Stat(filepath.Join(jarDir, "zookeeper.jar")); err != nil {
		return "", fmt.Errorf("%s (%s/zookeeper.jar: %w)", installHint, jarDir, err)
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("%s (java: %w)", installHint, err)
	}
	return java, nil
}

// Len is the number of servers.
func (c *Cluster) Len() int { return len(c.servers) }

// ConnectString is "127.0.0.1:p1,127.0.0.1:p2,..." for every server.
func (c *Cluster) ConnectString() string { return strings.Join(c.Servers(), ",") }

// Servers lists every server's client address, in server order.
func (c *Cluster) Servers() []string {
	out := make([]string, len(c.servers))
	for i := range c.servers {
		out[i] = c.Addr(i)
	}
	return out
}

// Addr is the client address of server i (0-based).
func (c *Cluster) Addr(i int) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(c.servers[i].clientPort))
}

// Index returns the index of the server whose client address is addr, or
// -1.
func (c *Cluster) Index(addr string) int {
	for i := range c.servers {
		if c.Addr(i) == addr {
			return i
		}
	}
	return -1
}

// Stop stops server i with SIGTERM and waits for it to exit.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	s := c.servers[i]
	s.signal(syscall.SIGTERM)
	select {
	case <-s.doneChan():
	case <-time.After(15 * time.Second):
		s.signal(syscall.SIGKILL)
		s.wait()
	}
}

// Kill kills server i with SIGKILL (kill -9) and waits for it to exit.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	s := c.servers[i]
	s.signal(syscall.SIGKILL)
	s.wait()
}

// StartServer starts server i again (same ports, same data) after Stop or
// Kill, and waits until it serves.
func (c *Cluster) StartServer(i int) {
	c.t.Helper()
	s := c.servers[i]
	if err := s.start(c.java); err != nil {
		c.t.Fatalf("zktest: %v", err)
	}
	if err := s.waitServing(startTimeout); err != nil {
		c.t.Fatalf("zktest: %v", err)
	}
}

// Command sends a four-letter-word command ("ruok", "srvr", "mntr", ...) to
// server i and returns its answer.
func (c *Cluster) Command(i int, cmd string) (string, error) {
	return fourLetter(c.Addr(i), cmd, 2*time.Second)
}

// Mode returns "leader", "follower" or "standalone" for server i, from its
// "srvr" answer.
func (c *Cluster) Mode(i int) (string, error) {
	out, err := c.Command(i, "srvr")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", fmt.Errorf("zktest: no mode in srvr answer %q", out)
}

func (s *server) writeConfig(peers string) error {
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	// Short ticks so tests can use session timeouts down to one second;
	// the limits are explicit because they default to 2 and 20 ticks.
	cfg := fmt.Sprintf(`tickTime=500
initLimit=20
syncLimit=10
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
4lw.commands.whitelist=*
admin.enableServer=false
standaloneEnabled=true
reconfigEnabled=false
%s`, data, s.clientPort, peers)
	if err := os.WriteFile(filepath.Join(s.dir, "zoo.cfg"), []byte(cfg), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(data, "myid"), []byte(fmt.Sprintf("%d\n", s.id)), 0o644)
}

func (s *server) start(java string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		select {
		case <-s.done:
		default:
			return fmt.Errorf("server %d already running", s.id)
		}
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "zookeeper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(java,
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.root.logger=INFO,CONSOLE",
		"-cp", JarDir+"/*:/etc/zookeeper/conf",
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", filepath.Join(s.dir, "zoo.cfg"))
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group, so a signal to the test runner's group does not
	// reach it and Kill cannot hit anything else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start server %d: %w", s.id, err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	return nil
}

func (s *server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
	}
}

func (s *server) doneChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.done
}

func (s *server) wait() { <-s.doneChan() }

func (s *server) waitServing(timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(s.clientPort))
	deadline := time.Now().Add(timeout)
	done := s.doneChan()
	for {
		// "srvr" answers only once the server has joined a quorum (ruok
		// answers imok earlier, while a follower is still electing).
		out, err := fourLetter(addr, "srvr", time.Second)
		if err == nil && strings.Contains(out, "Mode: ") {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("server %d exited during start; log %s:\n%s", s.id, filepath.Join(s.dir, "zookeeper.log"), tail(filepath.Join(s.dir, "zookeeper.log")))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server %d not serving on %s after %s (last: %v %q); log:\n%s", s.id, addr, timeout, err, out, tail(filepath.Join(s.dir, "zookeeper.log")))
		}
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func fourLetter(addr, cmd string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && b.Len() == 0 {
				return "", err
			}
			return b.String(), nil
		}
	}
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. They are
// released before use, so another process could take one meanwhile; that is
// rare enough for tests.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
