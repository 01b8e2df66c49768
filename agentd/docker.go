package agentd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"

	"github.com/keelhq/keel/api/mesos"
)

// The Docker containerizer runs a task of container type DOCKER as one
// container of the local Docker Engine, through the Engine's own Go client
// (the API version is negotiated, so older engines work). Everything the
// agent needs to find its containers again after a restart is in their
// labels and in the task checkpoint; the container is removed once it has
// ended and its output copied to the sandbox (the sandbox stays).

// Labels on every container this agent creates.
const (
	labelAgentID     = "keel.agent_id"
	labelTaskID      = "keel.task_id"
	labelFrameworkID = "keel.framework_id"
	labelWorkDir     = "keel.work_dir"
	labelSandbox     = "keel.sandbox"
)

// dockerSandbox is where the task's sandbox is mounted in its container.
const dockerSandbox = "/mnt/mesos/sandbox"

// Timeouts of the Engine calls.
const (
	dockerCallTimeout = 30 * time.Second
	dockerPullTimeout = 10 * time.Minute
	dockerWaitRound   = time.Minute // one ContainerWait long poll
)

// dockerRuntime is the agent's connection to the Docker Engine.
type dockerRuntime struct {
	cli             *client.Client
	allowPrivileged bool
}

// newDockerRuntime connects to the engine at socket (a path, or a URL such
// as tcp://host:2375) and checks that it answers.
func newDockerRuntime(socket string, allowPrivileged bool) (*dockerRuntime, error) {
	host := socket
	if !strings.Contains(host, "://") {
		host = "unix://" + host
	}
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("agentd: docker: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("agentd: docker: engine at %s does not answer: %w", host, err)
	}
	return &dockerRuntime{cli: cli, allowPrivileged: allowPrivileged}, nil
}

// dockerContainer is the container of a Docker task.
type dockerContainer struct {
	// id is "" until the container is created; guarded by Agent.mu until
	// the task is RUNNING, immutable after.
	id      string
	network string // docker network mode: host, bridge or none
	ip      string // the container's own address (bridge)
}

// containerStatus is what a status of the task says about its container:
// its ID and address (the container's own on a bridge, the agent's with
// host networking).
func (c *dockerContainer) containerStatus(agentIP string) *mesos.ContainerStatus {
	cs := &mesos.ContainerStatus{}
	if c.id != "" {
		cs.ContainerID = &mesos.ID{Value: c.id}
	}
	ip := ""
	switch c.network {
	case "host":
		ip = agentIP
	case "bridge":
		ip = c.ip
	}
	if ip != "" {
		proto := "IPv4"
		if p := net.ParseIP(ip); p != nil && p.To4() == nil {
			proto = "IPv6"
		}
		cs.NetworkInfos = []mesos.NetworkInfo{{IPAddresses: []mesos.IPAddress{{Protocol: proto, IPAddress: ip}}}}
	}
	return cs
}

// dockerSpec is what the engine is asked to create for a task.
type dockerSpec struct {
	name      string
	config    *container.Config
	host      *container.HostConfig
	network   string
	forcePull bool
}

// specInput is what the agent knows about a task beyond its TaskInfo.
type specInput struct {
	agentID, frameworkID, hostname, endpoint string
	sandbox, workDir, name                   string
	allowPrivileged                          bool
}

// dockerParams are the docker run options a task may pass as parameters.
var dockerParams = map[string]bool{"env": true, "label": true, "volume": true, "workdir": true, "user": true, "hostname": true}

// dockerSpecFor turns a Docker task into the container to create. It does
// no I/O; an error means the task is invalid (TASK_ERROR).
func dockerSpecFor(ti mesos.TaskInfo, in specInput) (dockerSpec, error) {
	ci := ti.Container
	if ci == nil || ci.Docker == nil || ci.Docker.Image == "" {
		return dockerSpec{}, errors.New("docker task has no container.docker.image")
	}
	di := ci.Docker
	if di.Privileged && !in.allowPrivileged {
		return dockerSpec{}, errors.New("privileged containers are not allowed on this agent (see --docker_allow_privileged)")
	}
	cfg := &container.Config{Image: di.Image, Hostname: ci.Hostname, Labels: map[string]string{}}
	hc := &container.HostConfig{Privileged: di.Privileged}

	var env envList
	env.set("MESOS_SANDBOX", dockerSandbox)
	env.set("MESOS_DIRECTORY", in.sandbox)
	env.set("MESOS_TASK_ID", ti.TaskID.Value)
	env.set("MESOS_FRAMEWORK_ID", in.frameworkID)
	env.set("MESOS_AGENT_ID", in.agentID)
	env.set("HOST", in.hostname)
	if in.endpoint != "" {
		env.set("MESOS_AGENT_ENDPOINT", in.endpoint)
	}

	// Ports: the task's port resources are its host ports; with a bridge
	// each is mapped to a container port.
	taskPorts := map[uint32]bool{}
	var hostPorts []uint32
	for _, r := range ti.Resources.Ranges("ports") {
		for p := r.Begin; p <= r.End && len(hostPorts) < 1<<16; p++ {
			taskPorts[uint32(p)] = true
			hostPorts = append(hostPorts, uint32(p))
		}
	}
	switch strings.ToUpper(di.Network) {
	case "", "HOST":
		if len(di.PortMappings) > 0 {
			return dockerSpec{}, errors.New("port_mappings need BRIDGE networking")
		}
		if cfg.Hostname != "" {
			return dockerSpec{}, errors.New("a hostname needs BRIDGE or NONE networking")
		}
		hc.NetworkMode = "host"
	case "BRIDGE":
		hc.NetworkMode = "bridge"
		cfg.ExposedPorts = nat.PortSet{}
		hc.PortBindings = nat.PortMap{}
		hostPorts = nil
		for _, pm := range di.PortMappings {
			if !taskPorts[pm.HostPort] {
				return dockerSpec{}, fmt.Errorf("port mapping %d->%d: host port %d is not in the task's ports resources", pm.HostPort, pm.ContainerPort, pm.HostPort)
			}
			proto := strings.ToLower(pm.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			if proto != "tcp" && proto != "udp" {
				return dockerSpec{}, fmt.Errorf("port mapping %d->%d: protocol %q is not tcp or udp", pm.HostPort, pm.ContainerPort, pm.Protocol)
			}
			port, err := nat.NewPort(proto, strconv.Itoa(int(pm.ContainerPort)))
			if err != nil {
				return dockerSpec{}, fmt.Errorf("port mapping %d->%d: %w", pm.HostPort, pm.ContainerPort, err)
			}
			cfg.ExposedPorts[port] = struct{}{}
			hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostPort: strconv.Itoa(int(pm.HostPort))})
			hostPorts = append(hostPorts, pm.HostPort)
			env.set(fmt.Sprintf("PORT_%d", pm.ContainerPort), strconv.Itoa(int(pm.HostPort)))
		}
	case "NONE":
		if len(di.PortMappings) > 0 {
			return dockerSpec{}, errors.New("port_mappings need BRIDGE networking")
		}
		hc.NetworkMode = "none"
	default:
		return dockerSpec{}, fmt.Errorf("docker network %q is not supported (HOST, BRIDGE or NONE)", di.Network)
	}
	var ports []string
	for i, p := range hostPorts {
		env.set(fmt.Sprintf("PORT%d", i), strconv.Itoa(int(p)))
		ports = append(ports, strconv.Itoa(int(p)))
	}
	if len(ports) > 0 {
		env.set("PORT", ports[0])
		env.set("PORTS", strings.Join(ports, ","))
	}

	// The task's own environment wins over the agent's defaults.
	if c := ti.Command; c != nil && c.Environment != nil {
		for _, v := range c.Environment.Variables {
			env.set(v.Name, v.Value)
		}
	}

	hc.Binds = []string{in.sandbox + ":" + dockerSandbox}
	for _, v := range ci.Volumes {
		bind, err := volumeBind(v, in.sandbox)
		if err != nil {
			return dockerSpec{}, err
		}
		hc.Binds = append(hc.Binds, bind)
	}

	for _, p := range di.Parameters {
		if !dockerParams[p.Key] {
			return dockerSpec{}, fmt.Errorf("docker parameter %q is not supported (only env, label, volume, workdir, user, hostname)", p.Key)
		}
		switch p.Key {
		case "env":
			k, v, _ := strings.Cut(p.Value, "=")
			if k == "" {
				return dockerSpec{}, fmt.Errorf("docker parameter env=%q: want NAME=value", p.Value)
			}
			env.set(k, v)
		case "label":
			k, v, _ := strings.Cut(p.Value, "=")
			if k == "" || strings.HasPrefix(k, "keel.") {
				return dockerSpec{}, fmt.Errorf("docker parameter label=%q: want key=value, key not under keel.", p.Value)
			}
			cfg.Labels[k] = v
		case "volume":
			parts := strings.Split(p.Value, ":")
			if len(parts) < 2 || len(parts) > 3 || !strings.HasPrefix(parts[1], "/") {
				return dockerSpec{}, fmt.Errorf("docker parameter volume=%q: want host:/container[:ro|rw]", p.Value)
			}
			hc.Binds = append(hc.Binds, p.Value)
		case "workdir":
			cfg.WorkingDir = p.Value
		case "user":
			cfg.User = p.Value
		case "hostname":
			if hc.NetworkMode == "host" {
				return dockerSpec{}, errors.New("docker parameter hostname needs BRIDGE or NONE networking")
			}
			cfg.Hostname = p.Value
		}
	}
	cfg.Env = env.list()

	// The command: a shell command runs under the image's /bin/sh; without
	// one the image's own entrypoint runs, with the arguments as its cmd.
	if c := ti.Command; c != nil {
		switch {
		case c.IsShell() && c.Value != "":
			cfg.Entrypoint = []string{"/bin/sh", "-c"}
			cfg.Cmd = []string{c.Value}
		case !c.IsShell() && c.Value != "":
			cfg.Cmd = append([]string{c.Value}, c.Arguments...)
		case len(c.Arguments) > 0:
			cfg.Cmd = c.Arguments
		}
	}

	if cpus := ti.Resources.Scalar("cpus"); cpus > 0 {
		hc.CPUShares = max(int64(cpus*1024), 2)
	}
	if mem := ti.Resources.Scalar("mem"); mem > 0 {
		hc.Memory = int64(mem * (1 << 20))
	}

	cfg.Labels[labelAgentID] = in.agentID
	cfg.Labels[labelTaskID] = ti.TaskID.Value
	cfg.Labels[labelFrameworkID] = in.frameworkID
	cfg.Labels[labelWorkDir] = in.workDir
	cfg.Labels[labelSandbox] = in.sandbox
	return dockerSpec{name: in.name, config: cfg, host: hc, network: string(hc.NetworkMode), forcePull: di.ForcePullImage}, nil
}

// volumeBind is the docker bind of a Mesos volume.
func volumeBind(v mesos.Volume, sandbox string) (string, error) {
	if !strings.HasPrefix(v.ContainerPath, "/") {
		return "", fmt.Errorf("volume %q: container_path must be absolute", v.ContainerPath)
	}
	if v.HostPath == "" {
		return "", fmt.Errorf("volume %q: only host_path volumes are supported", v.ContainerPath)
	}
	host := v.HostPath
	if !filepath.IsAbs(host) {
		host = filepath.Join(sandbox, host)
	}
	switch strings.ToUpper(v.Mode) {
	case "", "RW":
		return host + ":" + v.ContainerPath + ":rw", nil
	case "RO":
		return host + ":" + v.ContainerPath + ":ro", nil
	}
	return "", fmt.Errorf("volume %q: mode %q is not RW or RO", v.ContainerPath, v.Mode)
}

// envList is an environment in which a later value of a name replaces
// the earlier one in place.
type envList struct {
	names []string
	vals  map[string]string
}

func (e *envList) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; !ok {
		e.names = append(e.names, k)
	}
	e.vals[k] = v
}

func (e *envList) list() []string {
	out := make([]string, 0, len(e.names))
	for _, k := range e.names {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// containerName is a docker-legal, unique-enough name for a task's container.
func containerName(taskID, run string) string {
	b := []byte(taskID)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return "keel-" + string(b) + "-" + run
}

// launchDocker starts a Docker task: it is validated at once (TASK_ERROR
// when invalid), then image, create and start run off the event loop.
func (a *Agent) launchDocker(t *task, fail func(state mesos.TaskState, reason, msg string)) {
	if a.docker == nil {
		fail(mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, "docker containerizer not enabled on this agent (see --containerizers)")
		return
	}
	run := a.newSandbox(t) // absolute, as a bind mount needs
	defer a.releaseSandbox(t)
	a.mu.Lock()
	aid := a.id
	a.mu.Unlock()
	spec, err := dockerSpecFor(t.info, specInput{agentID: aid, frameworkID: t.fid.Value, hostname: a.cfg.Hostname, endpoint: a.cfg.Listen,
		sandbox: t.sandbox, workDir: a.workDirAbs(), name: containerName(t.info.TaskID.Value, run), allowPrivileged: a.docker.allowPrivileged})
	if err != nil {
		fail(mesos.TaskError, mesos.ReasonTaskInvalid, err.Error())
		return
	}
	for _, f := range []string{"", "stdout", "stderr"} {
		if f == "" {
			err = os.MkdirAll(t.sandbox, 0o755)
		} else {
			err = os.WriteFile(filepath.Join(t.sandbox, f), nil, 0o644)
		}
		if err != nil {
			fail(mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, "sandbox: "+err.Error())
			return
		}
	}
	var fetch context.Context // nil without URIs
	if c := t.info.Command; c != nil && len(c.URIs) > 0 {
		fetch = a.newFetch(t)
	}
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		if fetch != nil {
			t.stopFetch()
		}
		fail(mesos.TaskLost, mesos.ReasonAgentRemoved, "Agent is shutting down")
		return
	}
	t.ctr = &dockerContainer{network: spec.network}
	a.tasks[t.info.TaskID.Value] = t
	a.status(t, mesos.TaskStarting, "", "")
	a.wg.Add(1)
	a.mu.Unlock()
	go a.startContainer(t, spec, fetch)
}

// workDirAbs is the work dir as the containers' label holds it.
func (a *Agent) workDirAbs() string {
	if abs, err := filepath.Abs(a.cfg.WorkDir); err == nil {
		return abs
	}
	return a.cfg.WorkDir
}

// startContainer fetches t's URIs into its sandbox (with a non-nil
// fetch context), creates and starts t's container and follows it.
func (a *Agent) startContainer(t *task, spec dockerSpec, fetch context.Context) {
	defer a.wg.Done()
	if fetch != nil {
		if state, reason, msg, ok := a.fetch(fetch, t); !ok {
			a.launchFailed(t, state, reason, msg)
			return
		}
	}
	d := a.docker
	if err := d.ensureImage(spec.config.Image, spec.forcePull); err != nil {
		a.launchFailed(t, mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	created, err := d.cli.ContainerCreate(ctx, spec.config, spec.host, nil, nil, spec.name)
	if err != nil {
		a.launchFailed(t, mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, "docker create: "+err.Error())
		return
	}
	id := created.ID
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		d.remove(id)
		a.launchFailed(t, mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, "docker start: "+err.Error())
		return
	}
	ip := ""
	if info, err := d.cli.ContainerInspect(ctx, id); err == nil {
		ip = containerIP(info)
	} else {
		a.log.Warn("could not inspect a started container", "task_id", t.info.TaskID.Value, "container_id", id, "err", err)
	}
	a.mu.Lock()
	if t.killing {
		a.mu.Unlock()
		d.remove(id)
		a.launchFailed(t, mesos.TaskKilled, mesos.ReasonTaskKilledDuringLaunch, "Task killed during launch")
		return
	}
	t.ctr.id, t.ctr.ip = id, ip
	a.status(t, mesos.TaskRunning, "", "")
	a.wg.Add(1)
	a.mu.Unlock()
	if err := a.checkpointTask(t); err != nil {
		a.log.Error("could not checkpoint task; it will not survive an agent restart", "task_id", t.info.TaskID.Value, "err", err)
	}
	a.metrics.launched.Inc()
	a.metrics.running.Inc()
	a.log.Info("task running", "task_id", t.info.TaskID.Value, "container_id", id, "image", spec.config.Image, "network", spec.network, "ip", ip, "sandbox", t.sandbox)
	go a.waitContainer(t, "")
	if t.info.HealthCheck != nil {
		a.wg.Add(1)
		go a.healthLoop(t)
	}
}

// launchFailed reports a Docker task, or a process task that fetched its
// URIs, that never ran.
func (a *Agent) launchFailed(t *task, state mesos.TaskState, reason, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.tasks, t.info.TaskID.Value)
	close(t.done)
	a.metrics.terminations.WithLabelValues(string(state)).Inc()
	a.log.Warn("task did not start", "task_id", t.info.TaskID.Value, "state", state, "message", msg)
	a.status(t, state, reason, msg)
}

// containerIP is a container's address on its (first) network.
func containerIP(info container.InspectResponse) string {
	if info.NetworkSettings == nil {
		return ""
	}
	if n := info.NetworkSettings.Networks["bridge"]; n != nil && n.IPAddress != "" {
		return n.IPAddress
	}
	for _, n := range info.NetworkSettings.Networks {
		if n != nil && n.IPAddress != "" {
			return n.IPAddress
		}
	}
	return ""
}

// ensureImage makes sure ref is on the engine: with force it is pulled
// (and a failed pull fails the task), else it must already be there.
func (d *dockerRuntime) ensureImage(ref string, force bool) error {
	if force {
		ctx, cancel := context.WithTimeout(context.Background(), dockerPullTimeout)
		defer cancel()
		rc, err := d.cli.ImagePull(ctx, ref, image.PullOptions{})
		if err != nil {
			return fmt.Errorf("docker pull %s: %w", ref, err)
		}
		defer rc.Close()
		// A pull reports its failure in its JSON message stream.
		dec := json.NewDecoder(rc)
		for {
			var msg struct {
				Error string `json:"error"`
			}
			if err := dec.Decode(&msg); err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("docker pull %s: %w", ref, err)
			}
			if msg.Error != "" {
				return fmt.Errorf("docker pull %s: %s", ref, msg.Error)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	if _, err := d.cli.ImageInspect(ctx, ref); err != nil {
		if client.IsErrNotFound(err) {
			return fmt.Errorf("image %s is not on this agent (set force_pull_image to pull it)", ref)
		}
		return fmt.Errorf("docker image inspect %s: %w", ref, err)
	}
	return nil
}

// remove deletes a container, running or not.
func (d *dockerRuntime) remove(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("agentd: docker rm %s: %w", id, err)
	}
	return nil
}

// waitContainer follows t's container until it ends (then reports how,
// and removes it) or the agent detaches from it. It copies the
// container's output into the sandbox meanwhile, from since on.
func (a *Agent) waitContainer(t *task, since string) {
	defer a.wg.Done()
	d, id := a.docker, t.ctr.id
	life, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-a.detached:
			stop()
		case <-life.Done():
		}
	}()
	logCtx, stopLogs := context.WithCancel(life)
	defer stopLogs()
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		if err := d.copyLogs(logCtx, id, t.sandbox, since); err != nil && logCtx.Err() == nil {
			a.log.Warn("could not copy container output to the sandbox", "task_id", t.info.TaskID.Value, "err", err)
		}
	}()
	code, err := d.wait(life, id)
	if life.Err() != nil { // detached: the container lives on
		stopLogs()
		<-logsDone
		return
	}
	// The log stream ends with the container; give it a moment to drain.
	select {
	case <-logsDone:
	case <-time.After(2 * time.Second):
	}
	stopLogs()
	<-logsDone
	state, reason := mesos.TaskFinished, ""
	var msg string
	switch {
	case err != nil:
		state, reason, msg = mesos.TaskFailed, mesos.ReasonExecutorTerminated, "Container ended; exit status unknown: "+err.Error()
	case code != 0:
		state, reason, msg = mesos.TaskFailed, mesos.ReasonCommandExecutorFailed, fmt.Sprintf("Container exited: exit status %d", code)
	default:
		msg = "Container exited: exit status 0"
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
		if info, err := d.cli.ContainerInspect(ctx, id); err == nil && info.State != nil && info.State.OOMKilled {
			msg += " (out of memory)"
		}
		cancel()
	}
	if err := d.remove(id); err != nil {
		a.log.Error("could not remove an ended container", "task_id", t.info.TaskID.Value, "err", err)
	}
	a.ended(t, state, reason, msg)
}

// wait waits for container id to stop running and returns its exit code,
// one bounded long poll after another.
func (d *dockerRuntime) wait(ctx context.Context, id string) (int64, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, dockerWaitRound)
		okC, errC := d.cli.ContainerWait(wctx, id, container.WaitConditionNotRunning)
		select {
		case r := <-okC:
			cancel()
			if r.Error != nil && r.Error.Message != "" {
				return r.StatusCode, errors.New(r.Error.Message)
			}
			return r.StatusCode, nil
		case err := <-errC:
			cancel()
			switch {
			case ctx.Err() != nil:
				return 0, ctx.Err()
			case client.IsErrNotFound(err):
				return 0, errors.New("the container is gone")
			case errors.Is(err, context.DeadlineExceeded):
				continue // next round
			}
			select { // the engine hiccupped: ask again shortly
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}

// copyLogs appends the container's stdout and stderr to the sandbox's
// files until the container ends or ctx is done.
func (d *dockerRuntime) copyLogs(ctx context.Context, id, sandbox, since string) error {
	rc, err := d.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Since: since})
	if err != nil {
		return err
	}
	defer rc.Close()
	stdout, err := os.OpenFile(filepath.Join(sandbox, "stdout"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(sandbox, "stderr"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer stderr.Close()
	_, err = stdcopy.StdCopy(stdout, stderr, rc)
	return err
}

// stopContainer stops t's container: SIGTERM, SIGKILL after grace. The
// container's waiter reports the end.
func (a *Agent) stopContainer(t *task, grace time.Duration) {
	defer a.wg.Done()
	a.mu.Lock()
	id := t.ctr.id
	a.mu.Unlock()
	if id == "" { // still starting: startContainer sees t.killing
		return
	}
	secs := int(math.Ceil(grace.Seconds()))
	ctx, cancel := context.WithTimeout(context.Background(), grace+dockerCallTimeout)
	defer cancel()
	if err := a.docker.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !client.IsErrNotFound(err) {
		a.log.Error("docker stop failed", "task_id", t.info.TaskID.Value, "container_id", id, "err", err)
	}
}

// recoverContainer re-attaches to the container of a checkpointed Docker
// task, or reports how it ended while the agent was down. With cleanup it
// kills it.
func (a *Agent) recoverContainer(cp taskCheckpoint, cleanup bool) {
	t := &task{info: cp.Task, fid: cp.FrameworkID, fwInfo: cp.FrameworkInfo, state: mesos.TaskRunning,
		sandbox: cp.Sandbox, done: make(chan struct{}), ctr: &dockerContainer{id: cp.ContainerID, network: cp.DockerNetwork}}
	id := cp.Task.TaskID.Value
	gone := func(msg string) {
		a.log.Warn("task ended while the agent was down", "task_id", id, "container_id", cp.ContainerID, "message", msg)
		a.mu.Lock()
		a.status(t, mesos.TaskFailed, mesos.ReasonExecutorTerminated, msg)
		a.mu.Unlock()
		a.forgetTask(id)
	}
	if a.docker == nil {
		gone("Task ran in container " + cp.ContainerID + " but the docker containerizer is not enabled on this agent")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	info, err := a.docker.cli.ContainerInspect(ctx, cp.ContainerID)
	cancel()
	switch {
	case client.IsErrNotFound(err):
		gone("Container is gone; it ended while the agent was not running, exit status unknown")
		return
	case err != nil:
		gone("Container could not be inspected after an agent restart: " + err.Error())
		return
	case info.State == nil || !info.State.Running:
		code := -1
		if info.State != nil {
			code = info.State.ExitCode
		}
		if err := a.docker.remove(cp.ContainerID); err != nil {
			a.log.Error("could not remove an ended container", "task_id", id, "err", err)
		}
		gone(fmt.Sprintf("Container exited while the agent was not running: exit status %d", code))
		return
	}
	t.ctr.ip = containerIP(info)
	a.mu.Lock()
	if cleanup {
		a.log.Info("killing task left from a previous run", "task_id", id, "container_id", cp.ContainerID)
		t.killing = true
	}
	a.tasks[id] = t
	a.wg.Add(1)
	a.mu.Unlock()
	a.metrics.running.Inc()
	a.log.Info("re-attached to container", "task_id", id, "container_id", cp.ContainerID)
	go a.waitContainer(t, logsSince(t.sandbox))
	if t.info.HealthCheck != nil && !cleanup {
		a.wg.Add(1)
		go a.healthLoop(t)
	}
	if cleanup {
		a.terminate(t, a.cfg.KillGrace)
	}
}

// logsSince is where copying a re-attached container's output resumes:
// the last write to its sandbox files.
func logsSince(sandbox string) string {
	var last time.Time
	for _, f := range []string{"stdout", "stderr"} {
		if st, err := os.Stat(filepath.Join(sandbox, f)); err == nil && st.ModTime().After(last) {
			last = st.ModTime()
		}
	}
	if last.IsZero() {
		return ""
	}
	last = last.Add(time.Nanosecond)
	return fmt.Sprintf("%d.%09d", last.Unix(), last.Nanosecond())
}

// removeOrphans removes the containers of this agent (same work dir) that
// no checkpoint knows: they were created but never recorded, or their
// checkpoint was lost.
func (a *Agent) removeOrphans(known map[string]bool) {
	if a.docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	list, err := a.docker.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelWorkDir+"="+a.workDirAbs()))})
	if err != nil {
		a.log.Error("could not list this agent's containers; orphans are left", "err", err)
		return
	}
	for _, c := range list {
		if known[c.ID] {
			continue
		}
		a.log.Warn("removing orphan container", "container_id", c.ID, "task_id", c.Labels[labelTaskID])
		if err := a.docker.remove(c.ID); err != nil {
			a.log.Error("could not remove orphan container", "container_id", c.ID, "err", err)
		}
	}
}
