package agentd

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// worldReadableDir is a work dir another user can reach (t.TempDir's
// directories are private to root).
func worldReadableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keel-agentd-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sandboxFile waits for a task's sandbox file to hold something.
func sandboxFile(t *testing.T, dir, task, name string) (string, os.FileInfo) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		matches, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", task, "*", name))
		if len(matches) == 1 {
			b, _ := os.ReadFile(matches[0])
			info, err := os.Stat(filepath.Dir(matches[0]))
			if len(b) > 0 && err == nil {
				return string(b), info
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: nothing in %s", task, name)
		}
	}
}

func TestSwitchUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test switches to user nobody: run it as root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("this test needs a user nobody: %v", err)
	}
	m := newFakeMaster(t)
	dir := worldReadableDir(t)
	_, stop := startAgentIn(t, m, dir, true)
	defer stop()

	asUser := func(id, cmd, name string) {
		ev := launch(id, cmd, nil)
		ev.Launch.Task.Command.User = name
		m.out <- ev
	}
	// As nobody: its uid and gid, and a sandbox it owns (it can write there).
	asUser("nob", `echo "$(id -u):$(id -g)"; touch mine`, "nobody")
	m.waitStates("nob", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	out, box := sandboxFile(t, dir, "nob", "stdout")
	if strings.TrimSpace(out) != nobody.Uid+":"+nobody.Gid {
		t.Fatalf("task ran as %q, want %s:%s", out, nobody.Uid, nobody.Gid)
	}
	if st := box.Sys().(*syscall.Stat_t); strconv.Itoa(int(st.Uid)) != nobody.Uid || strconv.Itoa(int(st.Gid)) != nobody.Gid {
		t.Fatalf("sandbox owned by %d:%d, want nobody", st.Uid, st.Gid)
	}

	// Its command health checks run as nobody too.
	ev := launch("nobhc", "sleep 30", nil)
	ev.Launch.Task.Command.User = "nobody"
	ev.Launch.Task.HealthCheck = &mesos.HealthCheck{Type: "COMMAND", IntervalSeconds: 0.05,
		Command: &mesos.CommandInfo{Value: `test "$(id -u)" = ` + nobody.Uid}}
	m.out <- ev
	if h := m.waitStates("nobhc", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING")[2].Healthy; h == nil || !*h {
		t.Fatal("health check did not run as the task's user")
	}

	// An unknown user: TASK_FAILED, nothing ran.
	asUser("ghost", "touch ran", "no-such-user-keel")
	st := m.waitStates("ghost", "TASK_FAILED")[0]
	if st.Reason != mesos.ReasonContainerLaunchFailed || !strings.Contains(st.Message, `"no-such-user-keel"`) ||
		!strings.Contains(st.Message, "no such user") {
		t.Fatalf("unknown user reported as %+v", st)
	}

	// The agent's own user needs no switch.
	asUser("self", `id -u`, "root")
	m.waitStates("self", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	if out, _ := sandboxFile(t, dir, "self", "stdout"); strings.TrimSpace(out) != "0" {
		t.Fatalf("task as root ran as %q", out)
	}
}

func TestSwitchUserOff(t *testing.T) {
	m := newFakeMaster(t)
	dir := t.TempDir()
	res, _ := mesos.ParseResources("cpus:1;mem:256")
	a, err := New(Config{Master: m.srv.URL, WorkDir: dir, Resources: res, NoSwitchUser: true})
	if err != nil {
		t.Fatal(err)
	}
	tk := &task{info: launch("x", "id -u", nil).Launch.Task}
	tk.info.Command.User = "no-such-user-keel"
	if cred, err := a.taskUser(tk); cred != nil || err != nil {
		t.Fatalf("--switch_user=false: credential %+v, error %v; want none", cred, err)
	}
}
