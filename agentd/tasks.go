package agentd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
)

// task is a task this agent runs.
type task struct {
	info    mesos.TaskInfo
	fid     mesos.ID
	fwInfo  mesos.FrameworkInfo
	state   mesos.TaskState
	sandbox string
	pid     int
	// killReason is the reason of the final TASK_KILLED (health checks).
	killReason string
	// startTime is the process's /proc start time, which tells it apart
	// from a later process that reuses the pid.
	startTime uint64
	killing   bool
	done      chan struct{} // closed when the process is reaped
	// ctr is the container of a Docker task (nil for a process).
	ctr *dockerContainer
	// cg is the cgroup of a process task (nil without cgroups isolation).
	cg *cgroup
	// cred is who the process runs as (nil: the agent's user).
	cred *syscall.Credential
	// last is the latest status sent for the task (health and addresses
	// included), re-reported when the agent (re-)registers so a new
	// master knows at once what the old one knew.
	last *mesos.TaskStatus
	// limitation says why the task's cgroup killed it (OOM). Only the
	// goroutine that follows the process (wait or watch) touches it.
	limitation string
	// stopFetch cancels the fetching of the task's URIs (nil without
	// URIs); set before the task is shared, immutable after.
	stopFetch context.CancelFunc
}

func (t *task) mesosTask(agentID string) mesos.Task {
	mt := mesos.Task{Name: t.info.Name, TaskID: t.info.TaskID, FrameworkID: t.fid, AgentID: mesos.ID{Value: agentID},
		State: t.state, Resources: t.info.Resources, Labels: t.info.Labels, Discovery: t.info.Discovery,
		Container: t.info.Container, HealthCheck: t.info.HealthCheck, KillPolicy: t.info.KillPolicy}
	if t.last != nil {
		st := *t.last
		st.UUID = nil // a report, not an update to acknowledge
		mt.Statuses = []mesos.TaskStatus{st}
	}
	return mt
}

// used returns the resources of live tasks. Caller holds mu.
func (a *Agent) used() mesos.Resources {
	var u mesos.Resources
	for _, t := range a.tasks {
		u = append(u, t.info.Resources...)
	}
	return u.Normalize()
}

// launch validates and starts a task.
func (a *Agent) launch(ctx context.Context, l *agent.Launch) {
	t := &task{info: l.Task, fid: l.FrameworkID, fwInfo: l.FrameworkInfo, state: mesos.TaskStaging, done: make(chan struct{})}
	a.mu.Lock()
	stopping := a.stopping
	_, dup := a.tasks[t.info.TaskID.Value]
	free := a.cfg.Resources.Minus(a.used())
	a.mu.Unlock()
	fail := func(state mesos.TaskState, reason, msg string) {
		a.log.Warn("task refused", "task_id", t.info.TaskID.Value, "reason", reason, "message", msg)
		a.status(t, state, reason, msg)
	}
	switch {
	case stopping:
		fail(mesos.TaskLost, mesos.ReasonAgentRemoved, "Agent is shutting down")
		return
	case dup:
		fail(mesos.TaskError, mesos.ReasonTaskInvalid, "Task "+t.info.TaskID.Value+" is already running on this agent")
		return
	case !free.Contains(t.info.Resources):
		fail(mesos.TaskError, mesos.ReasonTaskInvalid, "Task needs "+t.info.Resources.String()+" but the agent has "+free.String()+" free")
		return
	case t.info.Container != nil && t.info.Container.Type == "DOCKER":
		a.launchDocker(t, fail)
		return
	case t.info.Container != nil && t.info.Container.Type != "" && t.info.Container.Type != "MESOS":
		fail(mesos.TaskError, mesos.ReasonTaskInvalid, "unknown container type "+t.info.Container.Type)
		return
	case t.info.Command == nil || (t.info.Command.IsShell() && t.info.Command.Value == ""):
		fail(mesos.TaskError, mesos.ReasonTaskInvalid, "Task has no command")
		return
	case len(t.info.Command.URIs) > 0:
		a.launchFetching(t) // downloads first, off the event loop
		return
	}
	defer a.releaseSandbox(t)
	a.startProcess(t, fail)
}

// startProcess prepares and starts a process task. A task whose URIs were
// fetched is in a.tasks (TASK_STARTING) already and may have been killed
// meanwhile; fail reports a launch that did not happen.
func (a *Agent) startProcess(t *task, fail func(state mesos.TaskState, reason, msg string)) {
	p, err := a.prepare(t)
	if err != nil {
		fail(mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, err.Error())
		return
	}
	cmd := p.cmd
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		p.abort()
		fail(mesos.TaskLost, mesos.ReasonAgentRemoved, "Agent is shutting down")
		return
	}
	if t.killing {
		a.mu.Unlock()
		p.abort()
		fail(mesos.TaskKilled, mesos.ReasonTaskKilledDuringLaunch, "Task killed during launch")
		return
	}
	a.tasks[t.info.TaskID.Value] = t
	if t.state == mesos.TaskStaging {
		a.status(t, mesos.TaskStarting, "", "")
	}
	if err := cmd.Start(); err != nil {
		delete(a.tasks, t.info.TaskID.Value)
		a.mu.Unlock()
		p.abort()
		fail(mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, "start: "+err.Error())
		return
	}
	t.pid = cmd.Process.Pid
	if err := p.release(t.pid); err != nil {
		// The gate reads EOF and exits: the command never ran.
		delete(a.tasks, t.info.TaskID.Value)
		a.mu.Unlock()
		_ = syscall.Kill(-t.pid, syscall.SIGKILL)
		_ = cmd.Wait()
		p.abort()
		fail(mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, err.Error())
		return
	}
	t.cg = p.cg
	t.startTime = processStartTime(t.pid)
	a.status(t, mesos.TaskRunning, "", "")
	a.wg.Add(1)
	a.mu.Unlock()
	if err := a.checkpointTask(t); err != nil {
		a.log.Error("could not checkpoint task; it will not survive an agent restart", "task_id", t.info.TaskID.Value, "err", err)
	}
	a.metrics.launched.Inc()
	a.metrics.running.Inc()
	a.log.Info("task running", "task_id", t.info.TaskID.Value, "pid", t.pid, "sandbox", t.sandbox, "cgroup", p.cgroupName(), "user", p.user)
	go a.wait(t, cmd)
	if t.info.HealthCheck != nil {
		a.wg.Add(1)
		go a.healthLoop(t)
	}
}

// preparedProcess is a process task ready to start: its command and,
// with cgroups, the task's cgroup and the gate that holds the process
// until it is inside it.
type preparedProcess struct {
	cmd          *exec.Cmd
	cg           *cgroup
	gateR, gateW *os.File // nil without cgroups
	user         string   // who it runs as, "" for the agent's user
}

// release moves the started process pid into its cgroup and lets it run
// the task's command.
func (p *preparedProcess) release(pid int) error {
	if p.cg == nil {
		return nil
	}
	p.gateR.Close()
	p.gateR = nil
	defer func() { p.gateW.Close(); p.gateW = nil }()
	if err := p.cg.add(pid); err != nil {
		return err
	}
	if _, err := p.gateW.WriteString("go\n"); err != nil {
		return fmt.Errorf("agentd: release the task's process: %w", err)
	}
	return nil
}

// abort undoes prepare for a task that will not run.
func (p *preparedProcess) abort() {
	p.cmd.Stdout.(*os.File).Close()
	p.cmd.Stderr.(*os.File).Close()
	for _, f := range []*os.File{p.gateR, p.gateW} {
		if f != nil {
			f.Close()
		}
	}
	if p.cg != nil {
		_ = p.cg.destroy()
	}
}

func (p *preparedProcess) cgroupName() string {
	if p.cg == nil {
		return ""
	}
	return p.cg.name
}

// prepare creates the sandbox, the cgroup and the command of a process
// task.
func (a *Agent) prepare(t *task) (*preparedProcess, error) {
	cred, err := a.taskUser(t)
	if err != nil {
		return nil, err
	}
	t.cred = cred
	if t.sandbox == "" { // else the fetcher made it
		a.newSandbox(t)
	}
	if err := os.MkdirAll(t.sandbox, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	stdout, err := os.Create(filepath.Join(t.sandbox, "stdout"))
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	stderr, err := os.Create(filepath.Join(t.sandbox, "stderr"))
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	closeAll := func() { stdout.Close(); stderr.Close() }
	if cred != nil {
		if err := chownSandbox(t.sandbox, cred); err != nil {
			closeAll()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	c := t.info.Command
	var cmd *exec.Cmd
	if c.IsShell() {
		cmd = exec.Command("/bin/sh", "-c", c.Value)
	} else {
		if c.Value == "" {
			closeAll()
			return nil, fmt.Errorf("command has no executable")
		}
		cmd = exec.Command(c.Value, c.Arguments...)
		if len(c.Arguments) > 0 {
			cmd.Args = c.Arguments // Mesos: arguments include argv[0]
		}
	}
	cmd.Dir = t.sandbox
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	a.mu.Lock()
	aid := a.id
	a.mu.Unlock()
	env := append(os.Environ(),
		"MESOS_SANDBOX="+t.sandbox, "MESOS_DIRECTORY="+t.sandbox,
		"MESOS_TASK_ID="+t.info.TaskID.Value, "MESOS_FRAMEWORK_ID="+t.fid.Value,
		"MESOS_AGENT_ID="+aid, "HOST="+a.cfg.Hostname)
	if a.cfg.Listen != "" {
		env = append(env, "MESOS_AGENT_ENDPOINT="+a.cfg.Listen)
	}
	if c.Environment != nil {
		for _, v := range c.Environment.Variables {
			env = append(env, v.Name+"="+v.Value)
		}
	}
	cmd.Env = env
	p := &preparedProcess{cmd: cmd}
	if cred != nil {
		p.user = c.User
	}
	if a.cgroups == nil || cmd.Err != nil { // with cmd.Err, Start fails
		return p, nil
	}
	cg, err := a.cgroups.create(newContainerID(), t.info.Resources.Scalar("cpus"), t.info.Resources.Scalar("mem"))
	if err != nil {
		closeAll()
		return nil, err
	}
	p.cg = cg
	if p.gateR, p.gateW, err = os.Pipe(); err != nil {
		p.abort()
		return nil, fmt.Errorf("agentd: gate: %w", err)
	}
	// The gate's exec sets argv[0] to what it runs: the command's own
	// name when argv[0] is the executable (the shell finds it on PATH as
	// Go did), else the resolved path (an argv[0] of its own is lost).
	exe := cmd.Path
	if cmd.Args[0] == c.Value {
		exe = c.Value
	}
	args := append([]string{"/bin/sh", "-c", gateScript, "keel-gate", exe}, cmd.Args[1:]...)
	cmd.Path, cmd.Args = "/bin/sh", args
	cmd.ExtraFiles = []*os.File{p.gateR}
	return p, nil
}

// newContainerID names a task's container (its cgroup), as Mesos' UUIDs.
func newContainerID() string {
	b := newUUID()
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// wait reaps the process and reports how it ended. It polls wait4 rather
// than blocking in it, so that an agent exiting without killing its tasks
// (they live on and are re-attached by its successor) can stop waiting.
func (a *Agent) wait(t *task, cmd *exec.Cmd) {
	defer a.wg.Done()
	defer cmd.Stdout.(*os.File).Close()
	defer cmd.Stderr.(*os.File).Close()
	var ws syscall.WaitStatus
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		pid, err := syscall.Wait4(t.pid, &ws, syscall.WNOHANG, nil)
		if pid == t.pid || err != nil {
			break
		}
		select {
		case <-a.detached:
			return
		case <-tick.C:
		}
		if n%5 == 4 {
			a.checkLimits(t)
		}
	}
	state, reason, msg := mesos.TaskFinished, "", "Command exited with status 0"
	switch {
	case ws.Signaled():
		state, reason, msg = mesos.TaskFailed, mesos.ReasonCommandExecutorFailed, "Command terminated with signal "+ws.Signal().String()
	case ws.ExitStatus() != 0:
		state, reason, msg = mesos.TaskFailed, mesos.ReasonCommandExecutorFailed, fmt.Sprintf("Command exited with status %d", ws.ExitStatus())
	}
	a.ended(t, state, reason, msg)
}

// ended records that t's process is gone: whatever is left of its process
// group is killed and reaped (the agent is its subreaper), and the final
// status goes out (TASK_KILLED when we killed it, else the given one).
func (a *Agent) ended(t *task, state mesos.TaskState, reason, msg string) {
	a.metrics.running.Dec()
	if t.cg != nil {
		a.checkLimits(t)
		t.cg.killAll()
		defer func() { // after mu is released
			if err := t.cg.destroy(); err != nil {
				a.log.Error("could not remove the task's cgroup", "task_id", t.info.TaskID.Value, "err", err)
			}
		}()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	close(t.done)
	delete(a.tasks, t.info.TaskID.Value)
	switch {
	case t.killing && t.ctr != nil:
		state, reason, msg = mesos.TaskKilled, t.killReason, "Container terminated after kill; "+msg
	case t.killing:
		state, reason, msg = mesos.TaskKilled, t.killReason, "Command terminated after kill"
	case t.limitation != "":
		state, reason, msg = mesos.TaskFailed, reasonContainerLimitationMemory, t.limitation
	}
	markFinished(t.sandbox)
	if t.ctr == nil {
		reapGroup(t.pid)
	}
	a.metrics.terminations.WithLabelValues(string(state)).Inc()
	a.log.Info("task ended", "task_id", t.info.TaskID.Value, "state", state, "message", msg)
	a.status(t, state, reason, msg)
	a.forgetTask(t.info.TaskID.Value)
}

// checkLimits looks for an OOM kill in t's cgroup; on the first, it
// records the limitation and kills the whole task, as Mesos' memory
// isolator does. Called only by the goroutine following t's process.
func (a *Agent) checkLimits(t *task) {
	if t.cg == nil || t.limitation != "" || t.cg.oomKills() == 0 {
		return
	}
	t.limitation = t.cg.limitationMessage()
	a.log.Warn("task exceeded its memory limit; killing it", "task_id", t.info.TaskID.Value, "cgroup", t.cg.name, "message", t.limitation)
	_ = syscall.Kill(-t.pid, syscall.SIGKILL)
	t.cg.killAll()
}

// kill stops a task: TASK_KILLING (when the framework understands it),
// SIGTERM to the process group, SIGKILL after the grace period.
func (a *Agent) kill(k *agent.Kill) {
	a.mu.Lock()
	t, ok := a.tasks[k.TaskID.Value]
	if !ok {
		a.mu.Unlock()
		a.status(&task{info: mesos.TaskInfo{TaskID: k.TaskID}, fid: k.FrameworkID}, mesos.TaskLost, mesos.ReasonTaskUnknown, "Task is not running on this agent")
		return
	}
	if t.killing {
		a.mu.Unlock()
		return
	}
	t.killing = true
	drain := time.Duration(0)
	if t.fwInfo.HasCapability(mesos.CapabilityTaskKillingState) {
		a.status(t, mesos.TaskKilling, "", "")
		drain = a.cfg.KillingDrain
	}
	a.mu.Unlock()
	grace := a.cfg.KillGrace
	if kp := t.info.KillPolicy; kp != nil && kp.GracePeriod != nil {
		grace = time.Duration(kp.GracePeriod.Nanoseconds)
	}
	if kp := k.KillPolicy; kp != nil && kp.GracePeriod != nil {
		grace = time.Duration(kp.GracePeriod.Nanoseconds)
	}
	a.log.Info("killing task", "task_id", t.info.TaskID.Value, "drain", drain, "grace", grace)
	if drain <= 0 {
		a.terminate(t, grace)
		return
	}
	// TASK_KILLING is on its way to the gateways; the task keeps serving
	// its in-flight requests for the drain time before it is signalled.
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-t.done:
		case <-a.detached:
		case <-time.After(drain):
			a.terminate(t, grace)
		}
	}()
}

// terminate signals t's process group and escalates after grace. It does
// not wait.
func (a *Agent) terminate(t *task, grace time.Duration) {
	if t.stopFetch != nil {
		t.stopFetch() // still fetching: the launch sees t.killing
	}
	if t.ctr != nil {
		a.wg.Add(1)
		go a.stopContainer(t, grace)
		return
	}
	if t.pid == 0 { // not started (fetching): nothing to signal
		return
	}
	_ = syscall.Kill(-t.pid, syscall.SIGTERM)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		select {
		case <-t.done:
		case <-time.After(grace):
			_ = syscall.Kill(-t.pid, syscall.SIGKILL)
		}
	}()
}

// killAll kills every live task (agent shutdown) with at most 3s grace.
func (a *Agent) killAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopping = true
	for _, t := range a.tasks {
		if !t.killing {
			t.killing = true
			a.terminate(t, min(a.cfg.KillGrace, 3*time.Second))
		}
	}
}

// newSandbox picks t's sandbox directory and keeps the garbage collector
// off it until the task is in a.tasks (see releaseSandbox). It returns
// the run's name.
func (a *Agent) newSandbox(t *task) string {
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	t.sandbox = filepath.Join(a.cfg.WorkDir, "sandboxes", safeName(t.fid.Value), safeName(t.info.TaskID.Value), run)
	if abs, err := filepath.Abs(t.sandbox); err == nil {
		t.sandbox = abs
	}
	a.mu.Lock()
	a.preparing[t.sandbox] = true
	a.mu.Unlock()
	return run
}

// releaseSandbox ends the launch-time protection of t's sandbox: by now
// the task runs (and a.tasks protects it) or it never will.
func (a *Agent) releaseSandbox(t *task) {
	if t.sandbox == "" {
		return
	}
	a.mu.Lock()
	delete(a.preparing, t.sandbox)
	a.mu.Unlock()
}

// safeName keeps an ID usable as one path element.
func safeName(s string) string {
	s = strings.NewReplacer("/", "_", "..", "__").Replace(s)
	if s == "" || s == "." {
		return "_"
	}
	return s
}

// reapGroup kills what is left of process group pgid and reaps it. Orphans
// of a task are re-parented to the agent (a child subreaper, see
// becomeSubreaper), so without this they would linger as zombies.
func reapGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if err != nil { // ECHILD: nothing of the group is left
			return
		}
		if pid == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
