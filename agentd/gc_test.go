package agentd

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

func TestGCMaxAge(t *testing.T) {
	week := 7 * 24 * time.Hour
	for _, c := range []struct {
		name            string
		headroom, usage float64
		want            time.Duration
	}{
		{"empty disk", 0.1, 0, time.Duration(0.9 * float64(week))},
		{"half full", 0.1, 0.5, time.Duration(0.4 * float64(week))},
		{"at the headroom", 0.1, 0.9, 0},
		{"past the headroom", 0.1, 0.97, 0},
		{"no headroom, empty", 0, 0, week},
		{"full", 0, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := gcMaxAge(week, c.headroom, c.usage)
			if math.Abs(float64(got-c.want)) > float64(time.Second) {
				t.Fatalf("gcMaxAge(1w, %g, %g) = %v, want %v", c.headroom, c.usage, got, c.want)
			}
		})
	}
}

func TestGCDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	boxes := []finishedSandbox{
		{path: "new", finished: now.Add(-time.Minute)},
		{path: "old", finished: now.Add(-3 * time.Hour)},
		{path: "edge", finished: now.Add(-time.Hour)},
		{path: "older", finished: now.Add(-5 * time.Hour)},
	}
	for _, c := range []struct {
		maxAge time.Duration
		want   []string
	}{
		{time.Hour, []string{"older", "old", "edge"}},
		{4 * time.Hour, []string{"older"}},
		{0, []string{"older", "old", "edge", "new"}},
		{24 * time.Hour, nil},
	} {
		t.Run(c.maxAge.String(), func(t *testing.T) {
			if got := gcDue(slices.Clone(boxes), now, c.maxAge); !slices.Equal(got, c.want) {
				t.Fatalf("gcDue(max age %v) = %v, want %v", c.maxAge, got, c.want)
			}
		})
	}
}

// TestSandboxGC runs the collector on a real work dir with an injected
// clock and disk gauge: finished sandboxes go once older than the age the
// disk usage allows, at once when the disk is past its headroom; a live
// task's sandbox stays whatever its age.
func TestSandboxGC(t *testing.T) {
	leakcheck.Check(t)
	m := newFakeMaster(t)
	dir := t.TempDir()
	res, _ := mesos.ParseResources("cpus:1;mem:256;disk:100")
	a, err := New(Config{Master: m.srv.URL, WorkDir: dir, Hostname: "h1", Resources: res, UpdateRetry: 200 * time.Millisecond,
		KillGrace: time.Second, KillTasksOnExit: true, Isolation: "posix/cpu,posix/mem",
		GCDelay: time.Hour, GCDiskHeadroom: 0.1, DiskWatchInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var skew atomic.Int64   // how far the agent's clock is ahead
	var passes atomic.Int64 // GC passes (each reads the clock once)
	var usage atomic.Uint64 // math.Float64bits of the disk usage
	usage.Store(math.Float64bits(0.5))
	a.now = func() time.Time { passes.Add(1); return time.Now().Add(time.Duration(skew.Load())) }
	a.diskUsage = func(string) (float64, error) { return math.Float64frombits(usage.Load()), nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	box := func(task string) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", task, "*"))
		if len(m) != 1 {
			return ""
		}
		return m[0]
	}
	// waitPasses lets the collector run at least twice more.
	waitPasses := func() {
		t.Helper()
		n := passes.Load() + 2
		for deadline := time.Now().Add(5 * time.Second); passes.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("sandbox gc is not running")
			}
		}
	}
	waitGone := func(p string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(p); os.IsNotExist(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox %s not collected", p)
			}
		}
	}

	m.out <- launch("live", "sleep 30", nil)
	m.waitStates("live", "TASK_STARTING", "TASK_RUNNING")
	m.out <- launch("done", "true", nil)
	m.waitStates("done", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	live, finished := box("live"), box("done")
	if live == "" || finished == "" {
		t.Fatalf("sandboxes: live %q, done %q", live, finished)
	}
	// Half-full disk: kept up to 1h * (1 - 0.1 - 0.5) = 24 min.
	skew.Store(int64(20 * time.Minute))
	waitPasses()
	if _, err := os.Stat(finished); err != nil {
		t.Fatalf("sandbox collected before its time: %v", err)
	}
	skew.Store(int64(25 * time.Minute))
	waitGone(finished)
	// The empty task directory goes in the same pass, just after.
	waitGone(filepath.Dir(finished))
	// Well past gc_delay, the live task's sandbox stays.
	skew.Store(int64(30 * 24 * time.Hour))
	waitPasses()
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("live task's sandbox collected: %v", err)
	}

	// Past the headroom: a finished sandbox goes at the next check.
	skew.Store(0)
	usage.Store(math.Float64bits(0.95))
	m.out <- launch("fresh", "true", nil)
	m.waitStates("fresh", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	waitGone(filepath.Join(dir, "sandboxes", "F", "fresh"))
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("live task's sandbox collected on a full disk: %v", err)
	}
	// Once the live task ends, its sandbox and the framework's directory go.
	m.out <- agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: "live"}}}
	m.waitStates("live", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	waitGone(filepath.Join(dir, "sandboxes", "F"))
}

func TestGCConfig(t *testing.T) {
	dir := t.TempDir()
	a, err := New(Config{Master: "http://127.0.0.1:1", WorkDir: dir, Resources: DetectResources(dir), Isolation: "posix/cpu,posix/mem"})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.GCDelay != 7*24*time.Hour || a.cfg.GCDiskHeadroom != 0.1 || a.cfg.DiskWatchInterval != time.Minute {
		t.Fatalf("defaults: gc_delay %v, headroom %g, disk_watch_interval %v", a.cfg.GCDelay, a.cfg.GCDiskHeadroom, a.cfg.DiskWatchInterval)
	}
	if u, err := diskUsage(dir); err != nil || u <= 0 || u >= 1 {
		t.Fatalf("disk usage of %s: %g, %v", dir, u, err)
	}
	if _, err := New(Config{Master: "http://127.0.0.1:1", WorkDir: dir, Resources: DetectResources(dir), GCDiskHeadroom: 1.5}); err == nil {
		t.Fatal("gc_disk_headroom 1.5 accepted")
	}
}
