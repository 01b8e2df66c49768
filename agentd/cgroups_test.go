package agentd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

func TestParseIsolation(t *testing.T) {
	for _, c := range []struct {
		in   string
		want isolation
		err  bool
	}{
		{in: "cgroups/cpu,cgroups/mem", want: isolation{cpu: true, mem: true}},
		{in: "cgroups/mem", want: isolation{mem: true}},
		{in: " cgroups/cpu , posix/mem", want: isolation{cpu: true}},
		{in: "posix/cpu,posix/mem", want: isolation{}},
		{in: "cgroups/cpu,filesystem/linux", err: true},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseIsolation(c.in)
			if (err != nil) != c.err || got != c.want {
				t.Fatalf("parseIsolation(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.err)
			}
		})
	}
}

func TestCgroupLimits(t *testing.T) {
	for _, c := range []struct {
		cpus, mem      float64
		shares, weight uint64
		memBytes       uint64
	}{
		{cpus: 1, mem: 128, shares: 1024, weight: 39, memBytes: 128 << 20},
		{cpus: 0.5, mem: 64, shares: 512, weight: 20, memBytes: 64 << 20},
		{cpus: 0, mem: 0, shares: 2, weight: 1, memBytes: 32 << 20}, // Mesos' floors
		{cpus: 0.001, mem: 16, shares: 2, weight: 1, memBytes: 32 << 20},
		{cpus: 256, mem: 1024, shares: 262144, weight: 10000, memBytes: 1 << 30},
	} {
		t.Run(fmt.Sprintf("cpus=%g,mem=%g", c.cpus, c.mem), func(t *testing.T) {
			if got := cpuShares(c.cpus); got != c.shares {
				t.Errorf("shares %d, want %d", got, c.shares)
			}
			if got := cpuWeight(cpuShares(c.cpus)); got != c.weight {
				t.Errorf("weight %d, want %d", got, c.weight)
			}
			if got := memLimitBytes(c.mem); got != c.memBytes {
				t.Errorf("memory limit %d, want %d", got, c.memBytes)
			}
		})
	}
}

// TestCgroupV2Files drives the v2 code against a directory laid out like
// a cgroup2 mount (this machine may not have one): the controllers are
// delegated and each task's limits land in cpu.weight and memory.max.
func TestCgroupV2Files(t *testing.T) {
	h := t.TempDir()
	write := func(p, v string) {
		if err := os.WriteFile(filepath.Join(h, p), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(h, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write("cgroup.controllers", "cpuset cpu io memory pids\n")
	write("cgroup.subtree_control", "")
	s, err := newCgroupSet(h, "keel", isolation{cpu: true, mem: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.v2 {
		t.Fatal("v2 hierarchy not detected")
	}
	for _, p := range []string{"cgroup.subtree_control", "keel/cgroup.subtree_control"} {
		if got := read(p); got != "+cpu +memory" {
			t.Errorf("%s = %q, want +cpu +memory", p, got)
		}
	}
	c, err := s.create("c1", 0.5, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := read("keel/c1/cpu.weight"); got != "20" {
		t.Errorf("cpu.weight %q", got)
	}
	if got := read("keel/c1/memory.max"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory.max %q", got)
	}
	if err := c.add(4242); err != nil || read("keel/c1/cgroup.procs") != "4242" {
		t.Fatalf("add: %v, cgroup.procs %q", err, read("keel/c1/cgroup.procs"))
	}
	if n := c.oomKills(); n != 0 {
		t.Fatalf("oom kills before any: %d", n)
	}
	write("keel/c1/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n")
	write("keel/c1/memory.peak", strconv.Itoa(70<<20))
	if n := c.oomKills(); n != 1 {
		t.Fatalf("oom kills %d, want 1", n)
	}
	if msg := s.open("c1").limitationMessage(); msg != "Memory limit exceeded: Requested: 64MB Maximum Used: 70MB" {
		t.Fatalf("message %q", msg)
	}

	// Missing controller: refused.
	h2 := t.TempDir()
	os.WriteFile(filepath.Join(h2, "cgroup.controllers"), []byte("cpu io\n"), 0o644)
	if _, err := newCgroupSet(h2, "keel", isolation{cpu: true, mem: true}); err == nil || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("v2 without memory controller: %v", err)
	}
	// Neither v2 nor v1: refused.
	if _, err := newCgroupSet(t.TempDir(), "keel", isolation{mem: true}); err == nil {
		t.Fatal("no hierarchy accepted")
	}
}

// cgroupTestRoot is a cgroup root of the test's own (so that concurrent
// agents on this machine keep theirs) removed at the end; the test fails
// if the machine has no usable cgroup hierarchy.
func cgroupTestRoot(t *testing.T) string {
	t.Helper()
	root := fmt.Sprintf("keel-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	s, err := newCgroupSet("/sys/fs/cgroup", root, isolation{cpu: true, mem: true})
	if err != nil {
		t.Fatalf("this test needs a writable cgroup hierarchy at /sys/fs/cgroup (run as root): %v", err)
	}
	t.Cleanup(func() {
		dirs := []string{filepath.Join(s.hierarchy, root)}
		if !s.v2 {
			dirs = []string{filepath.Join(s.hierarchy, "cpu", root), filepath.Join(s.hierarchy, "memory", root)}
		}
		for _, d := range dirs {
			left, _ := filepath.Glob(filepath.Join(d, "*-*-*-*-*"))
			if len(left) > 0 {
				t.Errorf("cgroups left behind: %v", left)
			}
			for _, l := range left {
				os.Remove(l)
			}
			if err := os.Remove(d); err != nil {
				t.Errorf("remove test cgroup root: %v", err)
			}
		}
	})
	return root
}

// startCgroupAgent runs an agent with cgroups isolation under a root of
// the test's own.
func startCgroupAgent(t *testing.T, m *fakeMaster, root string, opts ...func(*Config)) (string, func()) {
	t.Helper()
	leakcheck.Check(t)
	dir := t.TempDir()
	res, _ := mesos.ParseResources("cpus:2;mem:1024;disk:100;ports:[31000-31010]")
	cfg := Config{Master: m.srv.URL, WorkDir: dir, Hostname: "h1", Resources: res, UpdateRetry: 200 * time.Millisecond,
		KillGrace: time.Second, KillTasksOnExit: true, Isolation: "cgroups/cpu,cgroups/mem", CgroupsRoot: root}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.cgroups == nil {
		t.Fatal("cgroups isolation asked for but not enabled")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("agent did not stop within 10s")
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return dir, stop
}

// taskCgroups reads /proc/<pid>/cgroup: controller (v1) or "" (v2) to path.
func taskCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			for _, c := range strings.Split(parts[1], ",") {
				out[c] = parts[2]
			}
		}
	}
	return out
}

func TestCgroupIsolation(t *testing.T) {
	root := cgroupTestRoot(t)
	m := newFakeMaster(t)
	dir, stop := startCgroupAgent(t, m, root)
	defer stop()

	// The command's first line already runs inside the task's cgroup.
	ev := launch("where", `cat /proc/$$/cgroup; ls /proc/$$/fd > fds; sleep 30`, mesos.Resources{mesos.ScalarResource("cpus", 0.5), mesos.ScalarResource("mem", 64)})
	m.out <- ev
	pid := m.waitStates("where", "TASK_STARTING", "TASK_RUNNING")[1].ContainerStatus.ExecutorPID
	cgs := taskCgroups(t, pid)
	var memDir, cpuDir string
	if p, ok := cgs["memory"]; ok { // v1
		memDir, cpuDir = filepath.Join("/sys/fs/cgroup/memory", p), filepath.Join("/sys/fs/cgroup/cpu", cgs["cpu"])
		if got := readTrim(t, filepath.Join(cpuDir, "cpu.shares")); got != "512" {
			t.Errorf("cpu.shares %s, want 512", got)
		}
		if got := readTrim(t, filepath.Join(memDir, "memory.limit_in_bytes")); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.limit_in_bytes %s", got)
		}
	} else {
		memDir = filepath.Join("/sys/fs/cgroup", cgs[""])
		cpuDir = memDir
		if got := readTrim(t, filepath.Join(memDir, "memory.max")); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.max %s", got)
		}
	}
	if !strings.Contains(memDir, "/"+root+"/") {
		t.Fatalf("task in cgroup %s, not under %s", memDir, root)
	}
	// What the command saw of itself before anything else ran.
	var stdout string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		matches, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "where", "*", "stdout"))
		if len(matches) == 1 {
			b, _ := os.ReadFile(matches[0])
			if stdout = string(b); strings.Contains(stdout, "/"+root+"/") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command's first line ran outside its cgroup: %q", stdout)
		}
	}
	// The gate's pipe is closed before the command runs.
	var fds []string
	for deadline := time.Now().Add(5 * time.Second); len(fds) == 0; time.Sleep(10 * time.Millisecond) {
		if matches, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "where", "*", "fds")); len(matches) == 1 {
			b, _ := os.ReadFile(matches[0])
			fds = strings.Fields(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatal("no fds listing")
		}
	}
	if slices.Contains(fds, "3") {
		t.Errorf("the task's command inherited the gate's fd 3: %v", fds)
	}
	m.out <- agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: "where"}}}
	m.waitStates("where", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	for _, d := range []string{memDir, cpuDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still there after the task ended: %v", d, err)
		}
	}

	// 300 MB against 32 MB: the OOM killer stops it, reported as Mesos does.
	m.out <- launch("hog", `head -c 300000000 /dev/zero | tail > /dev/null; sleep 30`,
		mesos.Resources{mesos.ScalarResource("cpus", 0.1), mesos.ScalarResource("mem", 32)})
	sts := m.waitStates("hog", "TASK_STARTING", "TASK_RUNNING", "TASK_FAILED")
	last := sts[2]
	if last.Reason != reasonContainerLimitationMemory || last.Source != mesos.SourceAgent ||
		!strings.Contains(last.Message, "Memory limit exceeded: Requested: 32MB") {
		t.Fatalf("OOM-killed task reported as %+v", last)
	}
	hogPid := sts[1].ContainerStatus.ExecutorPID
	if processStartTime(hogPid) != 0 {
		t.Fatal("the rest of the task (its sleep) survived the memory limitation")
	}

	// A command without a shell keeps its argv behind the gate.
	no := false
	ev = launch("argv", "", nil)
	ev.Launch.Task.Command.Value, ev.Launch.Task.Command.Shell = "sh", &no
	ev.Launch.Task.Command.Arguments = []string{"sh", "-c", `tr '\0' ' ' < /proc/$$/cmdline`}
	m.out <- ev
	m.waitStates("argv", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	if out, _ := sandboxFile(t, dir, "argv", "stdout"); !strings.HasPrefix(out, "sh -c ") {
		t.Fatalf("argv behind the gate: %q", out)
	}

	// A task that stays within its limit ends normally.
	m.out <- launch("small", `head -c 1000000 /dev/zero | tail > /dev/null`,
		mesos.Resources{mesos.ScalarResource("cpus", 0.1), mesos.ScalarResource("mem", 32)})
	m.waitStates("small", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
}

// TestCgroupRecovery: a task re-attached after an agent restart keeps its
// cgroup, and the new agent removes it when the task ends.
func TestCgroupRecovery(t *testing.T) {
	root := cgroupTestRoot(t)
	m := newFakeMaster(t)
	dir, stop := startCgroupAgent(t, m, root, func(c *Config) { c.KillTasksOnExit = false })
	m.out <- launch("keep", "sleep 30", nil)
	pid := m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING")[1].ContainerStatus.ExecutorPID
	defer syscall.Kill(-pid, syscall.SIGKILL) // should the test fail early
	before := taskCgroups(t, pid)
	stop()
	res, _ := mesos.ParseResources("cpus:2;mem:1024;disk:100;ports:[31000-31010]")
	a, err := New(Config{Master: m.srv.URL, WorkDir: dir, Hostname: "h1", Resources: res, UpdateRetry: 200 * time.Millisecond,
		KillGrace: time.Second, KillTasksOnExit: true, Isolation: "cgroups/cpu,cgroups/mem", CgroupsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	a.mu.Lock()
	rt := a.tasks["keep"]
	a.mu.Unlock()
	where, v1 := before["memory"]
	if !v1 {
		where = before[""]
	}
	if rt == nil || rt.cg == nil || !strings.HasSuffix(where, "/"+rt.cg.name) {
		t.Fatalf("re-attached task without its cgroup: %+v (process in %v)", rt, before)
	}
	if rt.cg.memLimit != 32<<20 { // launch's 16 MiB, raised to Mesos' floor
		t.Errorf("re-attached cgroup's limit %d", rt.cg.memLimit)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m.mu.Lock()
		n := len(m.subs)
		m.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restarted agent did not subscribe")
		}
	}
	m.out <- agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: "keep"}}}
	m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	for _, d := range rt.cg.dirs() {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(d); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cgroup %s of the re-attached task not removed", d)
			}
		}
	}
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestCgroupRemoveStale: empty task cgroups older than a minute are
// orphans and go; young ones (a launch in progress) and occupied ones stay.
func TestCgroupRemoveStale(t *testing.T) {
	root := cgroupTestRoot(t)
	s, err := newCgroupSet("/sys/fs/cgroup", root, isolation{cpu: true, mem: true})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := s.create(newContainerID(), 0.1, 32)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := s.create(newContainerID(), 0.1, 32)
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait(); busy.remove() }()
	if err := busy.add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if n := s.removeStale(time.Now()); n != 0 {
		t.Fatalf("removed %d young cgroups", n)
	}
	if n := s.removeStale(time.Now().Add(2 * staleCgroupAge)); n != len(empty.dirs()) {
		t.Fatalf("removed %d cgroup directories, want the %d of the empty one", n, len(empty.dirs()))
	}
	for _, d := range empty.dirs() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("stale %s still there: %v", d, err)
		}
	}
	for _, d := range busy.dirs() {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("occupied %s removed: %v", d, err)
		}
	}
}
