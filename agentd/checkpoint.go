package agentd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Checkpoints let a restarted agent find its tasks again. Each live task
// has a file under WorkDir/meta/tasks/ written (atomically, synced) once
// its process started, and removed when it ended; the status update queue
// is in WorkDir/meta/updates.json, rewritten on every change. A process
// is re-attached only if its /proc start time still matches, so a reused
// pid is never mistaken for a task.

type taskCheckpoint struct {
	FrameworkID   mesos.ID            `json:"framework_id"`
	FrameworkInfo mesos.FrameworkInfo `json:"framework_info"`
	Task          mesos.TaskInfo      `json:"task"`
	PID           int                 `json:"pid"`
	StartTime     uint64              `json:"start_time"`
	Sandbox       string              `json:"sandbox"`
	// ContainerID and DockerNetwork are set for a Docker task.
	ContainerID   string `json:"container_id,omitempty"`
	DockerNetwork string `json:"docker_network,omitempty"`
	// Cgroup names a process task's cgroup (cgroups isolation).
	Cgroup string `json:"cgroup,omitempty"`
}

func (a *Agent) metaDir() string { return filepath.Join(a.cfg.WorkDir, "meta") }

func (a *Agent) taskFile(id string) string {
	return filepath.Join(a.metaDir(), "tasks", safeName(id)+".json")
}

// checkpointTask records a started task.
func (a *Agent) checkpointTask(t *task) error {
	if err := os.MkdirAll(filepath.Join(a.metaDir(), "tasks"), 0o755); err != nil {
		return err
	}
	cp := taskCheckpoint{FrameworkID: t.fid, FrameworkInfo: t.fwInfo, Task: t.info, PID: t.pid, StartTime: t.startTime, Sandbox: t.sandbox}
	if t.ctr != nil {
		cp.ContainerID, cp.DockerNetwork = t.ctr.id, t.ctr.network
	}
	if t.cg != nil {
		cp.Cgroup = t.cg.name
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	return writeFileAtomic(a.taskFile(t.info.TaskID.Value), b)
}

func (a *Agent) forgetTask(id string) {
	if err := os.Remove(a.taskFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Error("could not remove task checkpoint", "task_id", id, "err", err)
	}
}

// processStartTime reads a process's start time (clock ticks since boot)
// from /proc; 0 if the process does not exist.
func processStartTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	// After the command come state (field 3) ... starttime is field 22.
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	if fields[0] == "Z" { // a zombie has ended
		return 0
	}
	return v
}

// recoverTasks re-attaches to checkpointed tasks whose process lives on
// and reports the others as failed. With cleanup it kills them all.
func (a *Agent) recoverTasks(cleanup bool) {
	files, _ := filepath.Glob(filepath.Join(a.metaDir(), "tasks", "*.json"))
	containers := map[string]bool{}
	defer a.removeOrphans(containers)
	for _, f := range files {
		b, err := os.ReadFile(f)
		var cp taskCheckpoint
		if err == nil {
			err = json.Unmarshal(b, &cp)
		}
		if err != nil {
			a.log.Error("skipping unreadable task checkpoint", "file", f, "err", err)
			continue
		}
		if cp.ContainerID != "" {
			containers[cp.ContainerID] = true
			a.recoverContainer(cp, cleanup)
			continue
		}
		t := &task{info: cp.Task, fid: cp.FrameworkID, fwInfo: cp.FrameworkInfo, state: mesos.TaskRunning,
			sandbox: cp.Sandbox, pid: cp.PID, startTime: cp.StartTime, done: make(chan struct{})}
		alive := cp.PID > 0 && cp.StartTime != 0 && processStartTime(cp.PID) == cp.StartTime
		if cp.Cgroup != "" {
			if a.cgroups != nil {
				t.cg = a.cgroups.open(cp.Cgroup)
			} else {
				a.log.Warn("task has a cgroup but this agent runs without cgroups isolation; its limits stay as they were",
					"task_id", cp.Task.TaskID.Value, "cgroup", cp.Cgroup)
			}
		}
		t.cred, _ = a.taskUser(t) // for its command health checks
		a.mu.Lock()
		switch {
		case !alive:
			a.log.Warn("task ended while the agent was down", "task_id", cp.Task.TaskID.Value)
			if t.cg != nil {
				if err := t.cg.destroy(); err != nil {
					a.log.Error("could not remove the task's cgroup", "task_id", cp.Task.TaskID.Value, "err", err)
				}
			}
			markFinished(t.sandbox)
			a.status(t, mesos.TaskFailed, mesos.ReasonExecutorTerminated, "Task ended while the agent was not running; exit status unknown")
			a.mu.Unlock()
			a.forgetTask(cp.Task.TaskID.Value)
			continue
		case cleanup:
			a.log.Info("killing task left from a previous run", "task_id", cp.Task.TaskID.Value)
			t.killing = true
		}
		a.tasks[t.info.TaskID.Value] = t
		a.wg.Add(1)
		a.mu.Unlock()
		a.metrics.running.Inc()
		a.log.Info("re-attached to task", "task_id", t.info.TaskID.Value, "pid", t.pid)
		go a.watch(t)
		if t.info.HealthCheck != nil && !cleanup {
			a.wg.Add(1)
			go a.healthLoop(t)
		}
		if cleanup {
			a.terminate(t, a.cfg.KillGrace)
		}
	}
}

// watch follows a re-attached task (not our child, so it cannot be waited
// for) until its process is gone, and reports how it ended as far as can
// be known.
func (a *Agent) watch(t *task) {
	defer a.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for processStartTime(t.pid) == t.startTime {
		select {
		case <-a.detached:
			return
		case <-tick.C:
		}
		a.checkLimits(t)
	}
	a.ended(t, mesos.TaskFailed, mesos.ReasonExecutorTerminated, "Task process exited; exit status unknown after an agent restart")
}
