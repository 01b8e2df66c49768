package agentd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/internal/testimage"
)

// These tests run against the machine's real Docker Engine and build
// their own image (internal/testimage); no registry is needed.

// dockerClient connects to the engine the agent under test uses, or fails.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost("unix:///var/run/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("these tests need a Docker Engine on /var/run/docker.sock: %v", err)
	}
	return cli
}

// agentContainers lists the containers of the agent on dir.
func agentContainers(t *testing.T, cli *client.Client, dir string) []container.Summary {
	t.Helper()
	abs, _ := filepath.Abs(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelWorkDir+"="+abs))})
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return list
}

// removeAgentContainers removes whatever containers the agent on dir left.
func removeAgentContainers(t *testing.T, cli *client.Client, dir string) {
	for _, c := range agentContainers(t, cli, dir) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			t.Errorf("cleanup: docker rm %s: %v", c.ID, err)
		}
		cancel()
	}
}

// startDockerAgent runs an agent with the docker containerizer on dir,
// offering ports; kill says whether it kills its tasks when stopped.
// Every container it leaves is removed when the test ends. opts adjust
// the config.
func startDockerAgent(t *testing.T, m *fakeMaster, cli *client.Client, dir string, ports mesos.Range, kill bool, opts ...func(*Config)) func() {
	t.Helper()
	leakcheck.Check(t)
	t.Cleanup(func() { removeAgentContainers(t, cli, dir) })
	res := mesos.Resources{mesos.ScalarResource("cpus", 2), mesos.ScalarResource("mem", 1024), mesos.ScalarResource("disk", 1000),
		mesos.RangesResource("ports", ports)}
	cfg := Config{Master: m.srv.URL, WorkDir: dir, Hostname: "h1", Resources: res, UpdateRetry: 200 * time.Millisecond,
		KillGrace: time.Second, KillTasksOnExit: kill, Containerizers: []string{"docker", "mesos"}}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("agent did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	return stop
}

// freePort returns a TCP port nothing listens on now.
func freePort(t *testing.T) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// dockerTask is the launch of the test image; args go to its server.
func dockerTask(id, image, network string, port uint32, mappings []mesos.PortMapping, args ...string) agent.Event {
	res := mesos.Resources{mesos.ScalarResource("cpus", 0.1), mesos.ScalarResource("mem", 32)}
	if port != 0 {
		res = append(res, mesos.RangesResource("ports", mesos.Range{Begin: uint64(port), End: uint64(port)}))
	}
	no := false
	return agent.Event{Type: agent.EventLaunch, Launch: &agent.Launch{FrameworkID: mesos.ID{Value: "F"},
		FrameworkInfo: mesos.FrameworkInfo{Name: "f", Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityTaskKillingState}}},
		Task: mesos.TaskInfo{Name: id, TaskID: mesos.ID{Value: id}, AgentID: mesos.ID{Value: "A1"}, Resources: res,
			Command: &mesos.CommandInfo{Shell: &no, Arguments: args,
				Environment: &mesos.Environment{Variables: []mesos.EnvVar{{Name: "GREETING", Value: "hi"}}}},
			Container: &mesos.ContainerInfo{Type: "DOCKER", Docker: &mesos.DockerInfo{Image: image, Network: network, PortMappings: mappings}}}}}
}

func kill(id string) agent.Event {
	return agent.Event{Type: agent.EventKill, Kill: &agent.Kill{FrameworkID: mesos.ID{Value: "F"}, TaskID: mesos.ID{Value: id}}}
}

// httpGet polls url until it answers 200 and returns the body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitGone polls until container id no longer exists.
func waitGone(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := cli.ContainerInspect(ctx, id)
		cancel()
		if client.IsErrNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still exists (inspect: %v)", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// containerID is the container a RUNNING status names.
func containerID(t *testing.T, st mesos.TaskStatus) string {
	t.Helper()
	if cs := st.ContainerStatus; cs == nil || cs.ContainerID == nil || cs.ContainerID.Value == "" {
		t.Fatalf("RUNNING status without container id: %+v", st)
	}
	return st.ContainerStatus.ContainerID.Value
}

// runningIP is the container and address a RUNNING status names.
func runningIP(t *testing.T, st mesos.TaskStatus) (id, ip string) {
	t.Helper()
	cs := st.ContainerStatus
	if cs == nil || cs.ContainerID == nil || len(cs.NetworkInfos) != 1 || len(cs.NetworkInfos[0].IPAddresses) != 1 {
		t.Fatalf("RUNNING status without container id and one address: %+v", st)
	}
	return cs.ContainerID.Value, cs.NetworkInfos[0].IPAddresses[0].IPAddress
}

func TestDockerBridgeTask(t *testing.T) {
	cli := dockerClient(t)
	image := testimage.Build(t, cli)
	m := newFakeMaster(t)
	dir := t.TempDir()
	port := freePort(t)
	startDockerAgent(t, m, cli, dir, mesos.Range{Begin: uint64(port), End: uint64(port)}, true)

	ev := dockerTask("web", image, "BRIDGE", port, []mesos.PortMapping{{HostPort: port, ContainerPort: 8080, Protocol: "tcp"}}, "-port", "8080")
	ev.Launch.Task.HealthCheck = &mesos.HealthCheck{Type: "HTTP", HTTP: &mesos.HTTPCheck{Port: port, Path: "/"},
		IntervalSeconds: 0.2, TimeoutSeconds: 2, GracePeriodSeconds: 10}
	m.out <- ev
	sts := m.waitStates("web", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING")
	if h := sts[2].Healthy; h == nil || !*h {
		t.Fatalf("health check result: %+v", sts[2])
	}
	cid, ip := runningIP(t, sts[1])
	if ip == "127.0.0.1" || net.ParseIP(ip) == nil {
		t.Fatalf("bridge task reported address %q, want its container's", ip)
	}
	// Reached on the agent's host port and on the container's own address.
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); !strings.HasPrefix(got, "ok ") {
		t.Fatalf("via host port: %q", got)
	}
	if got := httpGet(t, fmt.Sprintf("http://%s:8080/", ip)); !strings.HasPrefix(got, "ok ") {
		t.Fatalf("via container IP: %q", got)
	}
	for name, want := range map[string]string{"GREETING": "hi", "MESOS_TASK_ID": "web", "MESOS_SANDBOX": "/mnt/mesos/sandbox",
		"PORT0": fmt.Sprint(port), "PORT_8080": fmt.Sprint(port), "HOST": "h1", "MESOS_AGENT_ID": "A1"} {
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/env/%s", port, name)); got != want {
			t.Errorf("env %s = %q, want %q", name, got, want)
		}
	}
	// Labels let a restarted agent find the container.
	cs := agentContainers(t, cli, dir)
	if len(cs) != 1 || cs[0].ID != cid || cs[0].Labels[labelTaskID] != "web" || cs[0].Labels[labelAgentID] != "A1" || cs[0].Labels[labelFrameworkID] != "F" {
		t.Fatalf("containers of the agent: %+v", cs)
	}

	m.out <- kill("web")
	sts = m.waitStates("web", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	if last := sts[4]; !strings.Contains(last.Message, "exit status") {
		t.Fatalf("killed status has no exit status: %+v", last)
	}
	waitGone(t, cli, cid)
	// The container's output is in the sandbox, which stays.
	outs, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "web", "*", "stdout"))
	if len(outs) != 1 {
		t.Fatalf("sandbox stdout: %v", outs)
	}
	if b, _ := os.ReadFile(outs[0]); !strings.Contains(string(b), "listening on :8080") || !strings.Contains(string(b), "terminated") {
		t.Fatalf("sandbox stdout %q", b)
	}
}

func TestDockerLaunchFailures(t *testing.T) {
	cli := dockerClient(t)
	image := testimage.Build(t, cli)
	m := newFakeMaster(t)
	dir := t.TempDir()
	port := freePort(t)
	startDockerAgent(t, m, cli, dir, mesos.Range{Begin: uint64(port), End: uint64(port)}, true)

	privileged := dockerTask("priv", image, "NONE", 0, nil)
	privileged.Launch.Task.Container.Docker.Privileged = true
	unknown := dockerTask("appc", image, "NONE", 0, nil)
	unknown.Launch.Task.Container.Type = "APPC"
	param := dockerTask("param", image, "NONE", 0, nil)
	param.Launch.Task.Container.Docker.Parameters = []mesos.Parameter{{Key: "env", Value: "A=b"}, {Key: "cap-add", Value: "ALL"}}
	// Nothing listens on 127.0.0.1:1, so the pull fails at once.
	pull := dockerTask("pull", "127.0.0.1:1/keel-test/absent:none", "NONE", 0, nil)
	pull.Launch.Task.Container.Docker.ForcePullImage = true
	badPort := dockerTask("badport", image, "BRIDGE", port, []mesos.PortMapping{{HostPort: port + 1, ContainerPort: 80}})
	for _, tc := range []struct {
		ev     agent.Event
		states []string
		msg    string
	}{
		{dockerTask("missing", "keel-test/absent:none", "NONE", 0, nil), []string{"TASK_STARTING", "TASK_FAILED"}, "image keel-test/absent:none is not on this agent"},
		{pull, []string{"TASK_STARTING", "TASK_FAILED"}, "docker pull 127.0.0.1:1/keel-test/absent:none"},
		{privileged, []string{"TASK_ERROR"}, "privileged"},
		{unknown, []string{"TASK_ERROR"}, "unknown container type APPC"},
		{param, []string{"TASK_ERROR"}, `"cap-add"`},
		{badPort, []string{"TASK_ERROR"}, "not in the task's ports"},
		{dockerTask("exit3", image, "NONE", 0, nil, "-exit", "3"), []string{"TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"}, "exit status 3"},
		{dockerTask("exit0", image, "NONE", 0, nil, "-exit", "0"), []string{"TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"}, "exit status 0"},
	} {
		id := tc.ev.Launch.Task.TaskID.Value
		t.Run(id, func(t *testing.T) {
			m.out <- tc.ev
			sts := m.waitStates(id, tc.states...)
			if last := sts[len(sts)-1]; !strings.Contains(last.Message, tc.msg) {
				t.Fatalf("final status %+v, want message with %q", last, tc.msg)
			}
		})
	}
	// Ended containers are removed.
	deadline := time.Now().Add(10 * time.Second)
	for len(agentContainers(t, cli, dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("containers left: %+v", agentContainers(t, cli, dir))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDockerRecoveryAfterRestart(t *testing.T) {
	cli := dockerClient(t)
	image := testimage.Build(t, cli)
	m := newFakeMaster(t)
	dir := t.TempDir()
	port := freePort(t)
	ports := mesos.Range{Begin: uint64(port), End: uint64(port)}
	stop := startDockerAgent(t, m, cli, dir, ports, false)

	// keep: host networking, listening on $PORT (the task's port).
	m.out <- dockerTask("keep", image, "HOST", port, nil)
	m.out <- dockerTask("die", image, "NONE", 0, nil)
	keep, ip := runningIP(t, m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING")[1])
	if ip != "127.0.0.1" {
		t.Fatalf("host-network task reported %q, want the agent's IP", ip)
	}
	die := containerID(t, m.waitStates("die", "TASK_STARTING", "TASK_RUNNING")[1])
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	stop() // like keel agent exiting: the containers live on

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if info, err := cli.ContainerInspect(ctx, keep); err != nil || !info.State.Running {
		t.Fatalf("container died with the agent: %v", err)
	}
	// One container ends while no agent runs, and one appears that no
	// checkpoint knows.
	if err := cli.ContainerKill(ctx, die, "KILL"); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	orphan, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Labels: map[string]string{labelWorkDir: abs}}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}

	startDockerAgent(t, m, cli, dir, ports, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		last, n := m.subs[len(m.subs)-1], len(m.subs)
		m.mu.Unlock()
		if n >= 2 {
			if len(last.Tasks) != 1 || last.Tasks[0].TaskID.Value != "keep" || last.Tasks[0].State != mesos.TaskRunning {
				t.Fatalf("re-registration after restart: %+v", last.Tasks)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("restarted agent did not subscribe")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := m.waitStates("die", "TASK_STARTING", "TASK_RUNNING", "TASK_FAILED")[2]; !strings.Contains(st.Message, "exit status 137") {
		t.Fatalf("container that died meanwhile: %+v", st)
	}
	waitGone(t, cli, die)
	waitGone(t, cli, orphan.ID)
	// The same container is still the task, and the new agent can kill it.
	if cs := agentContainers(t, cli, dir); len(cs) != 1 || cs[0].ID != keep || cs[0].State != "running" {
		t.Fatalf("containers after restart: %+v", cs)
	}
	httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	m.out <- kill("keep")
	m.waitStates("keep", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")
	waitGone(t, cli, keep)
}

func TestDockerCleanupAndShutdown(t *testing.T) {
	cli := dockerClient(t)
	image := testimage.Build(t, cli)
	m := newFakeMaster(t)
	dir := t.TempDir()
	stop := startDockerAgent(t, m, cli, dir, mesos.Range{Begin: 1, End: 1}, false)
	m.out <- dockerTask("old", image, "NONE", 0, nil)
	old := containerID(t, m.waitStates("old", "TASK_STARTING", "TASK_RUNNING")[1])
	stop()

	// --recover=cleanup: the container of the previous run is killed and
	// removed, not adopted.
	stop = startDockerAgent(t, m, cli, dir, mesos.Range{Begin: 1, End: 1}, true, func(c *Config) { c.Cleanup = true })
	m.waitStates("old", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLED")
	waitGone(t, cli, old)

	// An agent that kills its tasks on exit (keel dev) stops its containers.
	m.out <- dockerTask("dev", image, "NONE", 0, nil)
	dev := containerID(t, m.waitStates("dev", "TASK_STARTING", "TASK_RUNNING")[1])
	stop()
	m.waitStates("dev", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLED")
	waitGone(t, cli, dev)
}

func TestDockerSpec(t *testing.T) {
	no := false
	base := func() mesos.TaskInfo {
		return mesos.TaskInfo{TaskID: mesos.ID{Value: "t1"},
			Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.5), mesos.ScalarResource("mem", 64),
				mesos.RangesResource("ports", mesos.Range{Begin: 31000, End: 31001})},
			Container: &mesos.ContainerInfo{Type: "DOCKER", Docker: &mesos.DockerInfo{Image: "img"}}}
	}
	in := specInput{agentID: "A", frameworkID: "F", hostname: "h", sandbox: "/sb", workDir: "/w", name: "n"}
	for _, tc := range []struct {
		name   string
		mod    func(*mesos.TaskInfo)
		err    string
		check  func(t *testing.T, s dockerSpec)
		allowP bool
	}{
		{name: "host default", mod: func(*mesos.TaskInfo) {}, check: func(t *testing.T, s dockerSpec) {
			env := strings.Join(s.config.Env, " ")
			if s.network != "host" || !strings.Contains(env, "PORT0=31000 PORT1=31001 PORT=31000 PORTS=31000,31001") ||
				s.host.CPUShares != 512 || s.host.Memory != 64<<20 || s.config.Cmd != nil || s.config.Entrypoint != nil ||
				s.host.Binds[0] != "/sb:/mnt/mesos/sandbox" || s.config.Labels[labelWorkDir] != "/w" {
				t.Fatalf("%+v %+v", s.config, s.host)
			}
		}},
		{name: "shell command", mod: func(ti *mesos.TaskInfo) { ti.Command = &mesos.CommandInfo{Value: "echo hi"} }, check: func(t *testing.T, s dockerSpec) {
			if strings.Join(s.config.Entrypoint, " ") != "/bin/sh -c" || strings.Join(s.config.Cmd, " ") != "echo hi" {
				t.Fatalf("%v %v", s.config.Entrypoint, s.config.Cmd)
			}
		}},
		{name: "arguments to the image entrypoint", mod: func(ti *mesos.TaskInfo) { ti.Command = &mesos.CommandInfo{Shell: &no, Arguments: []string{"-a", "b"}} },
			check: func(t *testing.T, s dockerSpec) {
				if s.config.Entrypoint != nil || strings.Join(s.config.Cmd, " ") != "-a b" {
					t.Fatalf("%v %v", s.config.Entrypoint, s.config.Cmd)
				}
			}},
		{name: "task env and env parameter win", mod: func(ti *mesos.TaskInfo) {
			ti.Command = &mesos.CommandInfo{Environment: &mesos.Environment{Variables: []mesos.EnvVar{{Name: "PORT0", Value: "9"}}}}
			ti.Container.Docker.Parameters = []mesos.Parameter{{Key: "env", Value: "HOST=x"}, {Key: "label", Value: "a=b"}, {Key: "workdir", Value: "/d"},
				{Key: "user", Value: "nobody"}, {Key: "volume", Value: "/a:/b:ro"}}
		}, check: func(t *testing.T, s dockerSpec) {
			env := strings.Join(s.config.Env, " ")
			if !strings.Contains(env, "HOST=x") || !strings.Contains(env, "PORT0=9") || strings.Contains(env, "PORT0=31000") ||
				s.config.Labels["a"] != "b" || s.config.WorkingDir != "/d" || s.config.User != "nobody" || s.host.Binds[1] != "/a:/b:ro" {
				t.Fatalf("%+v %+v", s.config, s.host)
			}
		}},
		{name: "bridge", mod: func(ti *mesos.TaskInfo) {
			ti.Container.Docker.Network = "BRIDGE"
			ti.Container.Docker.PortMappings = []mesos.PortMapping{{HostPort: 31001, ContainerPort: 53, Protocol: "udp"}}
			ti.Container.Volumes = []mesos.Volume{{ContainerPath: "/data", HostPath: "data", Mode: "RO"}}
		}, check: func(t *testing.T, s dockerSpec) {
			b := s.host.PortBindings["53/udp"]
			env := strings.Join(s.config.Env, " ")
			if s.network != "bridge" || len(b) != 1 || b[0].HostPort != "31001" || !strings.Contains(env, "PORT0=31001 ") ||
				!strings.Contains(env, "PORT_53=31001") || s.host.Binds[1] != "/sb/data:/data:ro" {
				t.Fatalf("%+v %+v", s.config, s.host)
			}
		}},
		{name: "privileged allowed", allowP: true, mod: func(ti *mesos.TaskInfo) { ti.Container.Docker.Privileged = true },
			check: func(t *testing.T, s dockerSpec) {
				if !s.host.Privileged {
					t.Fatal("not privileged")
				}
			}},
		{name: "privileged refused", mod: func(ti *mesos.TaskInfo) { ti.Container.Docker.Privileged = true }, err: "privileged"},
		{name: "no image", mod: func(ti *mesos.TaskInfo) { ti.Container.Docker.Image = "" }, err: "no container.docker.image"},
		{name: "user network", mod: func(ti *mesos.TaskInfo) { ti.Container.Docker.Network = "USER" }, err: `"USER"`},
		{name: "mapping on host network", mod: func(ti *mesos.TaskInfo) {
			ti.Container.Docker.PortMappings = []mesos.PortMapping{{HostPort: 31000, ContainerPort: 80}}
		}, err: "BRIDGE"},
		{name: "bad protocol", mod: func(ti *mesos.TaskInfo) {
			ti.Container.Docker.Network = "BRIDGE"
			ti.Container.Docker.PortMappings = []mesos.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "sctp"}}
		}, err: "sctp"},
		{name: "unknown parameter", mod: func(ti *mesos.TaskInfo) {
			ti.Container.Docker.Parameters = []mesos.Parameter{{Key: "pid", Value: "host"}}
		}, err: `"pid"`},
		{name: "keel label", mod: func(ti *mesos.TaskInfo) {
			ti.Container.Docker.Parameters = []mesos.Parameter{{Key: "label", Value: labelTaskID + "=x"}}
		}, err: "keel."},
		{name: "relative container path", mod: func(ti *mesos.TaskInfo) { ti.Container.Volumes = []mesos.Volume{{ContainerPath: "d", HostPath: "/d"}} }, err: "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := base()
			tc.mod(&ti)
			in := in
			in.allowPrivileged = tc.allowP
			s, err := dockerSpecFor(ti, in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}
