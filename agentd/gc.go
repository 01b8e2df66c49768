package agentd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Sandbox garbage collection, as Mesos' agent does it: the sandbox of a
// finished task is removed once it is older than --gc_delay, and sooner
// as the work dir's filesystem fills: every --disk_watch_interval the
// agent measures disk usage and removes the sandboxes of finished tasks
// older than gc_delay * max(0, 1 - gc_disk_headroom - usage). A task's
// finish time is its run directory's mtime (set when the task ends, so it
// survives agent restarts). The sandbox of a live task is never removed.

// Mesos' defaults.
const (
	defaultGCDelay           = 7 * 24 * time.Hour
	defaultGCDiskHeadroom    = 0.1
	defaultDiskWatchInterval = time.Minute
)

// finishedSandbox is the run directory of a task that is no longer live.
type finishedSandbox struct {
	path     string
	finished time.Time
}

// gcMaxAge is how old a finished sandbox may get at a disk usage
// (0..1), Mesos' formula, capped at delay.
func gcMaxAge(delay time.Duration, headroom, usage float64) time.Duration {
	return min(delay, time.Duration(float64(delay)*max(0, 1-headroom-usage)))
}

// gcDue returns, oldest first, the sandboxes to remove at now.
func gcDue(boxes []finishedSandbox, now time.Time, maxAge time.Duration) []string {
	sort.Slice(boxes, func(i, j int) bool { return boxes[i].finished.Before(boxes[j].finished) })
	var out []string
	for _, b := range boxes {
		if now.Sub(b.finished) >= maxAge {
			out = append(out, b.path)
		}
	}
	return out
}

// setupGC applies the GC defaults and checks them.
func (a *Agent) setupGC() error {
	c := &a.cfg
	if c.GCDelay <= 0 {
		c.GCDelay = defaultGCDelay
	}
	if c.GCDiskHeadroom == 0 {
		c.GCDiskHeadroom = defaultGCDiskHeadroom
	}
	if c.GCDiskHeadroom < 0 || c.GCDiskHeadroom > 1 {
		return fmt.Errorf("agentd: config: gc_disk_headroom must be in [0, 1], got %g", c.GCDiskHeadroom)
	}
	if c.DiskWatchInterval <= 0 {
		c.DiskWatchInterval = defaultDiskWatchInterval
	}
	return nil
}

// diskUsage is the used share (0..1) of the filesystem holding path.
func diskUsage(path string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("agentd: disk usage of %s: %w", path, err)
	}
	if st.Blocks == 0 {
		return 0, fmt.Errorf("agentd: disk usage of %s: no blocks", path)
	}
	return float64(st.Blocks-st.Bfree) / float64(st.Blocks), nil
}

// gcLoop collects sandboxes at start and every DiskWatchInterval until
// ctx is done.
func (a *Agent) gcLoop(ctx context.Context) {
	tick := time.NewTicker(a.cfg.DiskWatchInterval)
	defer tick.Stop()
	for {
		a.collectSandboxes()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// collectSandboxes is one GC pass (over orphaned empty cgroups too).
func (a *Agent) collectSandboxes() {
	if a.cgroups != nil {
		if n := a.cgroups.removeStale(time.Now()); n > 0 {
			a.log.Info("removed empty cgroups of tasks that ended unobserved", "count", n)
		}
	}
	root := filepath.Join(a.workDirAbs(), "sandboxes")
	maxAge := a.cfg.GCDelay
	usage, err := a.diskUsage(a.cfg.WorkDir)
	if err != nil {
		a.log.Warn("sandbox gc: cannot measure disk usage; collecting by gc_delay alone", "err", err)
	} else {
		maxAge = gcMaxAge(a.cfg.GCDelay, a.cfg.GCDiskHeadroom, usage)
	}
	// List before looking at what is live: a sandbox is claimed before it
	// is created, so every listed one that is not live has finished.
	runs, _ := filepath.Glob(filepath.Join(root, "*", "*", "*"))
	a.mu.Lock()
	live := make(map[string]bool, len(a.tasks)+len(a.preparing))
	for _, t := range a.tasks {
		live[absPath(t.sandbox)] = true
	}
	for p := range a.preparing {
		live[p] = true
	}
	a.mu.Unlock()
	var boxes []finishedSandbox
	for _, r := range runs {
		if live[r] {
			continue
		}
		info, err := os.Lstat(r)
		if err != nil || !info.IsDir() {
			continue
		}
		boxes = append(boxes, finishedSandbox{path: r, finished: info.ModTime()})
	}
	due := gcDue(boxes, a.now(), maxAge)
	for _, p := range due {
		if err := os.RemoveAll(p); err != nil {
			a.log.Error("sandbox gc: could not remove a sandbox", "sandbox", p, "err", err)
			continue
		}
		a.metrics.sandboxesCollected.Inc()
		// The task's and the framework's directories go once empty.
		for d := filepath.Dir(p); d != root; d = filepath.Dir(d) {
			if err := os.Remove(d); err != nil {
				break
			}
		}
	}
	if len(due) > 0 {
		a.log.Info("sandbox gc: removed sandboxes of finished tasks", "count", len(due), "max_age", maxAge, "disk_usage", usage)
	}
}

// markFinished stamps a sandbox with the time its task ended, the age the
// GC goes by.
func markFinished(sandbox string) {
	if sandbox == "" {
		return
	}
	now := time.Now()
	_ = os.Chtimes(sandbox, now, now) // gone already: nothing to collect
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
