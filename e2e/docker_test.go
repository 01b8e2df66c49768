package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/testimage"
)

// TestDockerAppsEndToEnd runs a Docker app (the registry-free test image,
// BRIDGE networking, a port mapping to container port 8080, a MESOS_HTTP
// health check) next to a process app, through the Marathon API of a
// standalone keel master and a keel agent with the docker containerizer,
// each its own process. Both answer on their host ports; when the
// container stops answering (docker pause) Keel kills it and the app gets
// a new task; after kill -9 of the agent and a restart on the same work
// dir, the same tasks run in the same container and process, and nothing
// is launched twice.
func TestDockerAppsEndToEnd(t *testing.T) {
	need(t, "docker", "python3", "pgrep")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	out, err := exec.CommandContext(ctx, "docker", "info").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("this test needs a running Docker Engine that this user may use: docker info: %v\n%s", err, out)
	}
	cli, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	img := testimage.Build(t, cli)

	masterPort, marathonPort, ports := freePort(t), freePort(t), freeRange(t, 10)
	startKeel(t, "master", "--ip", "127.0.0.1", "--port", fmt.Sprint(masterPort), "--marathon_port", fmt.Sprint(marathonPort),
		"--work_dir", t.TempDir(), "--allocation_interval", "100ms", "--local_port_min", "30400", "--local_port_max", "30499")
	master := fmt.Sprintf("127.0.0.1:%d", masterPort)
	waitHTTP(t, "http://"+master+"/health")
	agentDir, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the agent starts, so it runs after the agent is
	// stopped: every container the agent made goes, whatever happened.
	t.Cleanup(func() { removeContainers(t, cli, agentDir) })
	agentArgs := []string{"agent", "--master", master, "--ip", "127.0.0.1", "--port", "0", "--work_dir", agentDir,
		"--containerizers", "docker,mesos", "--resources", fmt.Sprintf("cpus:2;mem:1024;disk:1000;ports:[%d-%d]", ports, ports+9)}
	ag := startKeel(t, agentArgs...)

	d := &devCluster{t: t, marathonPort: marathonPort, exited: make(chan error)}
	d.eventually("marathon API up", 30*time.Second, func() error {
		_, err := d.marathon("GET", "/ping", nil, 200)
		return err
	})
	web := map[string]any{"id": "/dockerweb", "instances": 1, "cpus": 0.1, "mem": 64, "backoffSeconds": 1,
		// The image's server listens on $PORT (the host port) unless told.
		"args": []string{"--port", "8080"},
		"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": img, "network": "BRIDGE",
			"portMappings": []map[string]any{{"containerPort": 8080, "hostPort": 0, "servicePort": 0}}}},
		"healthChecks": []map[string]any{{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
			"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}}}
	marker := fmt.Sprintf("keel-docker-e2e-%d", time.Now().UnixNano())
	proc := map[string]any{"id": "/procweb", "instances": 1, "cpus": 0.1, "mem": 64, "portDefinitions": []map[string]any{{"port": 0}},
		// The marker in its command line tells the task's process apart.
		"cmd": `mkdir ` + marker + ` && echo "proc $MESOS_TASK_ID" > ` + marker + `/index.html && ` +
			`exec python3 -m http.server --bind 127.0.0.1 --directory ` + marker + ` $PORT0`}
	for _, app := range []map[string]any{web, proc} {
		if _, err := d.marathon("POST", "/v2/apps", app, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
	}

	// Both answer on their host ports; the container is healthy.
	first := d.waitRunning("/dockerweb", 1, true)[0]
	ptask := d.waitRunning("/procweb", 1, true)[0]
	waitBody(t, first.Ports[0], "ok ")
	waitBody(t, ptask.Ports[0], "proc "+ptask.ID)
	waitHealthy(d, "/dockerweb", first.ID)
	c1 := taskContainer(t, cli, agentDir, first.ID)
	if c1.State.Status != "running" || c1.HostConfig.NetworkMode != "bridge" {
		t.Fatalf("container of %s: %s, network %s", first.ID, c1.State.Status, c1.HostConfig.NetworkMode)
	}

	// The container stops answering: its health check times out, the agent
	// kills it and the app gets a new task in a new container.
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	err = cli.ContainerPause(pctx, c1.ID)
	pcancel()
	if err != nil {
		t.Fatalf("docker pause: %v", err)
	}
	var second marathon.Task
	d.eventually("unhealthy task killed and replaced", 90*time.Second, func() error {
		out, err := d.marathon("GET", "/v2/apps/dockerweb", nil, http.StatusOK)
		if err != nil {
			return err
		}
		var r marathon.AppResponse
		if err := json.Unmarshal(out, &r); err != nil {
			return err
		}
		// Killed by the agent, not by the framework: a failure of the app.
		if f := r.App.LastTaskFailure; f == nil || f.TaskID != first.ID || f.State != "TASK_KILLED" {
			return fmt.Errorf("last task failure %+v, want %s killed", f, first.ID)
		}
		tasks := r.App.Tasks
		if len(tasks) != 1 || tasks[0].ID == first.ID || tasks[0].State != "TASK_RUNNING" {
			return fmt.Errorf("tasks %+v, want one running other than %s", tasks, first.ID)
		}
		second = tasks[0]
		return nil
	})
	d.eventually("old container removed", 30*time.Second, func() error {
		for _, c := range listContainers(t, cli, agentDir) {
			if c.ID == c1.ID {
				return fmt.Errorf("container %s still there (%s)", c.ID[:12], c.State)
			}
		}
		return nil
	})
	waitBody(t, second.Ports[0], "ok ")
	waitHealthy(d, "/dockerweb", second.ID)
	c2 := taskContainer(t, cli, agentDir, second.ID)

	// kill -9 the agent: the container and the process live on, and a new
	// agent on the same work dir takes them over.
	ppid := procIDs(t, marker)
	if ppid == "" || strings.Contains(ppid, ",") {
		t.Fatalf("process task pids %q, want one", ppid)
	}
	ag.cmd.Process.Signal(syscall.SIGKILL)
	<-ag.exited
	if c := taskContainer(t, cli, agentDir, second.ID); c.ID != c2.ID || c.State.Pid != c2.State.Pid || !c.State.Running {
		t.Fatalf("container changed when the agent died: %s pid %d running %v", c.ID[:12], c.State.Pid, c.State.Running)
	}
	d.eventually("master sees the agent gone", 30*time.Second, func() error { return agentActive(master, false) })
	startKeel(t, agentArgs...)
	d.eventually("agent back with its tasks", 30*time.Second, func() error {
		if err := agentActive(master, true); err != nil {
			return err
		}
		return sameTasks(t, d, cli, agentDir, second, c2, ptask, ppid, marker)
	})
	// With allocation every 100ms, a duplicate launch would show within 3s.
	d.consistently("same tasks, same container, same process, nothing launched twice", 3*time.Second, func() error {
		return sameTasks(t, d, cli, agentDir, second, c2, ptask, ppid, marker)
	})
	waitBody(t, second.Ports[0], "ok ")
	waitBody(t, ptask.Ports[0], "proc "+ptask.ID)
	waitHealthy(d, "/dockerweb", second.ID) // the new agent checks it again

	// The re-attached tasks can be killed.
	for _, id := range []string{"dockerweb", "procweb"} {
		if _, err := d.marathon("DELETE", "/v2/apps/"+id, nil, http.StatusOK); err != nil {
			t.Fatal(err)
		}
	}
	d.eventually("tasks gone", 30*time.Second, func() error {
		if cs := listContainers(t, cli, agentDir); len(cs) != 0 {
			return fmt.Errorf("%d containers left, first %s (%s)", len(cs), cs[0].ID[:12], cs[0].State)
		}
		if p := procIDs(t, marker); p != "" {
			return fmt.Errorf("process task still running: %s", p)
		}
		return nil
	})
}

// sameTasks checks that each app runs exactly the given task, the Docker
// one in container c (same pid) and the process one as pid, and that the
// agent runs no other container.
func sameTasks(t *testing.T, d *devCluster, cli *dockerclient.Client, agentDir string, dtask marathon.Task, c container.InspectResponse,
	ptask marathon.Task, pid, marker string) error {
	for app, want := range map[string]string{"/dockerweb": dtask.ID, "/procweb": ptask.ID} {
		tasks, err := appTasks(d, app)
		if err != nil {
			return err
		}
		if len(tasks) != 1 || tasks[0].ID != want || tasks[0].State != "TASK_RUNNING" {
			return fmt.Errorf("%s: tasks %+v, want only %s running", app, tasks, want)
		}
	}
	cs := listContainers(t, cli, agentDir)
	if len(cs) != 1 || cs[0].ID != c.ID || cs[0].State != "running" {
		return fmt.Errorf("agent containers %+v, want only %s running", cs, c.ID[:12])
	}
	if now := taskContainer(t, cli, agentDir, dtask.ID); now.State.Pid != c.State.Pid || now.State.StartedAt != c.State.StartedAt {
		return fmt.Errorf("container restarted: pid %d started %s, was pid %d started %s", now.State.Pid, now.State.StartedAt, c.State.Pid, c.State.StartedAt)
	}
	if got := procIDs(t, marker); got != pid {
		return fmt.Errorf("process task pids %q, want %q", got, pid)
	}
	return nil
}

// agentActive checks, with the operator API's GET_AGENTS, that the
// master's one agent is connected (or not).
func agentActive(master string, want bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+master+"/api/v1", strings.NewReader(`{"type":"GET_AGENTS"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r mesos.OperatorResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("GET_AGENTS: %d: %w", resp.StatusCode, err)
	}
	if r.GetAgents == nil || len(r.GetAgents.Agents) != 1 {
		return fmt.Errorf("GET_AGENTS: %+v, want one agent", r.GetAgents)
	}
	if a := r.GetAgents.Agents[0]; a.Active != want {
		return fmt.Errorf("agent %s active %v, want %v", a.AgentInfo.ID.Val(), a.Active, want)
	}
	return nil
}

// appTasks lists an app's tasks from /v2/apps/{id}.
func appTasks(d *devCluster, id string) ([]marathon.Task, error) {
	out, err := d.marathon("GET", "/v2/apps"+id, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var r marathon.AppResponse
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, err
	}
	return r.App.Tasks, nil
}

// waitHealthy waits until the app's task id passes its health check.
func waitHealthy(d *devCluster, app, id string) {
	d.t.Helper()
	d.eventually("task "+id+" healthy", 60*time.Second, func() error {
		tasks, err := appTasks(d, app)
		if err != nil {
			return err
		}
		for _, tk := range tasks {
			if tk.ID == id && len(tk.HealthCheckResults) > 0 && tk.HealthCheckResults[0].Alive {
				return nil
			}
		}
		return fmt.Errorf("tasks %+v", tasks)
	})
}

// waitBody polls http://127.0.0.1:port/ until its body starts with want.
func waitBody(t *testing.T, port int, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := func() (string, error) {
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return string(b), err
		}()
		if err == nil && strings.HasPrefix(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d: body %q, err %v; want it to start with %q", port, body, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listContainers lists the containers of the agent on agentDir, by the
// label Keel's agent puts on each.
func listContainers(t *testing.T, cli *dockerclient.Client, agentDir string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "keel.work_dir="+agentDir))})
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return cs
}

// taskContainer inspects the one container of task id.
func taskContainer(t *testing.T, cli *dockerclient.Client, agentDir, id string) container.InspectResponse {
	t.Helper()
	var found []string
	for _, c := range listContainers(t, cli, agentDir) {
		if c.Labels["keel.task_id"] == id {
			found = append(found, c.ID)
		}
	}
	if len(found) != 1 {
		t.Fatalf("task %s has containers %v, want one", id, found)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cli.ContainerInspect(ctx, found[0])
	if err != nil {
		t.Fatalf("docker inspect %s: %v", found[0], err)
	}
	return c
}

// removeContainers removes every container of the agent on agentDir.
func removeContainers(t *testing.T, cli *dockerclient.Client, agentDir string) {
	for _, c := range listContainers(t, cli, agentDir) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !dockerclient.IsErrNotFound(err) {
			t.Errorf("cleanup: docker rm %s: %v", c.ID, err)
		}
		cancel()
	}
}
