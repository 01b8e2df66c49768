package apps

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

func TestDockerTaskInfo(t *testing.T) {
	res, _ := mesos.ParseResources("cpus:4;mem:4096;ports:[31000-31010]")
	o := mesos.Offer{ID: mesos.ID{Value: "o"}, AgentID: mesos.ID{Value: "a"}, Hostname: "h", Resources: res}
	type mapping struct {
		host, container uint32
		proto           string
	}
	cases := []struct {
		name      string
		body      string
		network   string
		mappings  []mapping
		hostPorts []int
		env       map[string]string
		cmd       string   // "" = no value
		args      []string // command arguments
	}{
		{
			name: "bridge via networks",
			body: `{"id":"/web","networks":[{"mode":"container/bridge"}],"container":{"type":"DOCKER","docker":{"image":"nginx","privileged":true,"forcePullImage":true,
				"parameters":[{"key":"label","value":"a=b"}]},"portMappings":[{"containerPort":80,"hostPort":0,"servicePort":10080,"name":"http"},{"containerPort":53,"protocol":"udp,tcp","servicePort":10053}],
				"volumes":[{"containerPath":"/data","hostPath":"data","mode":"RO"},{"containerPath":"/tmp/x","hostPath":"/tmp/x"}]}}`,
			network:   "BRIDGE",
			mappings:  []mapping{{31000, 80, "tcp"}, {31001, 53, "udp"}, {31001, 53, "tcp"}},
			hostPorts: []int{31000, 31001},
			env:       map[string]string{"PORT0": "31000", "PORT1": "31001", "PORT_80": "31000", "PORT_53": "31001", "PORT_HTTP": "31000", "PORTS": "31000,31001"},
		},
		{
			name: "legacy bridge with a fixed host port",
			body: `{"id":"/old","args":["-p","1"],"container":{"type":"DOCKER","docker":{"image":"redis","network":"BRIDGE",
				"portMappings":[{"containerPort":6379,"hostPort":31005,"servicePort":10079}]}}}`,
			network:   "BRIDGE",
			mappings:  []mapping{{31005, 6379, "tcp"}},
			hostPorts: []int{31005},
			env:       map[string]string{"PORT0": "31005", "PORT_6379": "31005"},
			args:      []string{"-p", "1"},
		},
		{
			name:      "container port 0 is the host port",
			body:      `{"id":"/z","container":{"docker":{"image":"x","network":"BRIDGE","portMappings":[{"containerPort":0,"servicePort":10001}]}}}`,
			network:   "BRIDGE",
			mappings:  []mapping{{31000, 31000, "tcp"}},
			hostPorts: []int{31000},
			env:       map[string]string{"PORT0": "31000"},
		},
		{
			name: "host networking uses port definitions",
			body: `{"id":"/h","cmd":"serve","networks":[{"mode":"host"}],"portDefinitions":[{"port":10002}],
				"container":{"type":"DOCKER","docker":{"image":"x"},"portMappings":[{"containerPort":80}]}}`,
			network:   "HOST",
			hostPorts: []int{31000},
			env:       map[string]string{"PORT0": "31000", "PORT_10002": "31000"},
			cmd:       "serve",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var app marathon.App
			if err := decodeApp([]byte(c.body), &app); err != nil {
				t.Fatal(err)
			}
			if err := validate(&app); err != nil {
				t.Fatal(err)
			}
			ls, _ := place(o, []need{{App: &app, Count: 1}}, func(string) string { return "t.1" })
			if len(ls) != 1 {
				t.Fatalf("placed %d", len(ls))
			}
			ti := ls[0].Task
			if got := ls[0].HostPorts; len(got) != len(c.hostPorts) || (len(got) > 0 && got[0] != c.hostPorts[0]) {
				t.Fatalf("host ports %v, want %v", got, c.hostPorts)
			}
			ci := ti.Container
			if ci == nil || ci.Type != "DOCKER" || ci.Docker == nil || ci.Docker.Network != c.network || ci.Docker.Image != app.Container.Docker.Image {
				t.Fatalf("container: %+v", ci)
			}
			var got []mapping
			for _, pm := range ci.Docker.PortMappings {
				got = append(got, mapping{pm.HostPort, pm.ContainerPort, pm.Protocol})
			}
			if len(got) != len(c.mappings) {
				t.Fatalf("mappings %v, want %v", got, c.mappings)
			}
			for i := range got {
				if got[i] != c.mappings[i] {
					t.Fatalf("mappings %v, want %v", got, c.mappings)
				}
			}
			// Every mapped host port is in the task's resources.
			for _, pm := range ci.Docker.PortMappings {
				if !inRanges(ti.Resources.Ranges("ports"), int(pm.HostPort)) {
					t.Fatalf("host port %d not in the resources %v", pm.HostPort, ti.Resources)
				}
			}
			env := map[string]string{}
			for _, v := range ti.Command.Environment.Variables {
				env[v.Name] = v.Value
			}
			for k, want := range c.env {
				if env[k] != want {
					t.Errorf("env %s=%q, want %q", k, env[k], want)
				}
			}
			if ti.Command.Value != c.cmd || strings.Join(ti.Command.Arguments, " ") != strings.Join(c.args, " ") {
				t.Fatalf("command %q %v, want %q %v", ti.Command.Value, ti.Command.Arguments, c.cmd, c.args)
			}
			if c.cmd == "" && ti.Command.IsShell() {
				t.Fatal("a docker app without cmd must not run a shell")
			}
			// Discovery ports carry the service ports.
			if len(c.hostPorts) > 0 {
				sps := servicePortRefs(&app)
				if l := ti.Discovery.Ports.Ports[0].Labels; l == nil || l.Labels[0].Value != itoa(*sps[0]) {
					t.Fatalf("discovery: %+v", ti.Discovery.Ports.Ports[0])
				}
			}
		})
	}
	// The first case's flags and volumes.
	var app marathon.App
	decodeApp([]byte(cases[0].body), &app)
	validate(&app)
	ci := containerInfo(&app, []int{31000, 31001})
	if !ci.Docker.Privileged || !ci.Docker.ForcePullImage || len(ci.Docker.Parameters) != 1 || ci.Docker.Parameters[0].Key != "label" {
		t.Fatalf("docker flags: %+v", ci.Docker)
	}
	if len(ci.Volumes) != 2 || ci.Volumes[0] != (mesos.Volume{ContainerPath: "/data", HostPath: "data", Mode: "RO"}) || ci.Volumes[1].Mode != "RW" {
		t.Fatalf("volumes: %+v", ci.Volumes)
	}
	// A command app has no container.
	cmd := "x"
	plain := marathon.App{ID: "/p", Cmd: &cmd}
	if containerInfo(&plain, nil) != nil {
		t.Fatal("a command app got a container")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestValidateContainer(t *testing.T) {
	cases := []struct{ name, body, path string }{
		{"no image", `{"id":"/a","container":{"type":"DOCKER","docker":{"image":""}}}`, "/container/docker/image"},
		{"bad type", `{"id":"/a","cmd":"x","container":{"type":"RKT","docker":{"image":"x"}}}`, "/container/type"},
		{"user network", `{"id":"/a","networks":[{"mode":"container","name":"dcos"}],"container":{"docker":{"image":"x"}}}`, "/networks(0)/mode"},
		{"bad legacy network", `{"id":"/a","container":{"docker":{"image":"x","network":"USER"}}}`, "/container/docker/network"},
		{"bad protocol", `{"id":"/a","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80,"protocol":"sctp"}]}}`, "/container/portMappings(0)/protocol"},
		{"bad container port", `{"id":"/a","container":{"docker":{"image":"x","network":"BRIDGE","portMappings":[{"containerPort":70000}]}}}`, "/container/docker/portMappings(0)/containerPort"},
		{"duplicate service port", `{"id":"/a","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80,"servicePort":10001},{"containerPort":81,"servicePort":10001}]}}`, "/container/portMappings(1)/servicePort"},
		{"health check port index past the mappings", `{"id":"/a","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80}]},"healthChecks":[{"protocol":"HTTP","portIndex":1}]}`, "/healthChecks(0)/portIndex"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var app marathon.App
			if err := decodeApp([]byte(c.body), &app); err != nil {
				t.Fatal(err)
			}
			err := validate(&app)
			v, ok := err.(*validationError)
			if !ok {
				t.Fatalf("want a validation error, got %v", err)
			}
			for _, d := range v.details {
				if d.Path == c.path {
					return
				}
			}
			t.Fatalf("no error at %s: %+v", c.path, v.details)
		})
	}
}

// TestDockerServicePorts checks port mappings get service ports like port
// definitions do, over the API, and keep them across an update.
func TestDockerServicePorts(t *testing.T) {
	s := newGroupServer(t)
	ctx := context.Background()
	body := `{"id":"/d","instances":1,"cpus":0.1,"mem":16,"networks":[{"mode":"container/bridge"}],
		"container":{"type":"DOCKER","docker":{"image":"nginx"},"portMappings":[{"containerPort":80,"servicePort":0},{"containerPort":443}]}}`
	var created marathon.App
	if code := s.do("POST", "/v2/apps", body, &created); code != 201 {
		t.Fatalf("create: %d", code)
	}
	pms := created.Container.PortMappings
	if len(pms) != 2 || pms[0].ServicePort < 10000 || pms[1].ServicePort <= pms[0].ServicePort || pms[0].Protocol != "tcp" {
		t.Fatalf("service ports: %+v", pms)
	}
	// Another app asking for one of them is refused.
	var verr marathon.Error
	clash := `{"id":"/e","networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"x"},"portMappings":[{"containerPort":80,"servicePort":` + itoa(pms[0].ServicePort) + `}]}}`
	if code := s.do("POST", "/v2/apps", clash, &verr); code != 422 || verr.Details[0].Path != "/container/portMappings(0)/servicePort" {
		t.Fatalf("clash: %d %+v", code, verr)
	}
	// An update that leaves them at 0 keeps them.
	if code := s.do("PUT", "/v2/apps/d", `{"container":{"type":"DOCKER","docker":{"image":"nginx:2"},"portMappings":[{"containerPort":80},{"containerPort":443}]}}`, nil); code != 200 {
		t.Fatalf("update: %d", code)
	}
	var app marathon.AppResponse
	s.do("GET", "/v2/apps/d", "", &app)
	if got := app.App.Container.PortMappings; got[0].ServicePort != pms[0].ServicePort || got[1].ServicePort != pms[1].ServicePort || app.App.Container.Docker.Image != "nginx:2" {
		t.Fatalf("after update: %+v", app.App.Container)
	}
	if len(app.App.Networks) != 1 {
		t.Fatalf("networks lost in the update: %+v", app.App.Networks)
	}
	// A launched task reports its service ports, and the launch maps them.
	s.f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	s.m.take()
	s.f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o1")}}})
	calls := s.m.take()
	if types(calls) != "ACCEPT" {
		t.Fatalf("launch: %s", types(calls))
	}
	ti := calls[0].Accept.Operations[0].Launch.TaskInfos[0]
	if ti.Container == nil || len(ti.Container.Docker.PortMappings) != 2 || ti.Container.Docker.PortMappings[1].ContainerPort != 443 {
		t.Fatalf("launched container: %+v", ti.Container)
	}
	var tasks marathon.TasksResponse
	s.do("GET", "/v2/apps/d/tasks", "", &tasks)
	if len(tasks.Tasks) != 1 || len(tasks.Tasks[0].ServicePorts) != 2 || tasks.Tasks[0].ServicePorts[0] != pms[0].ServicePort || len(tasks.Tasks[0].Ports) != 2 {
		t.Fatalf("tasks: %+v", tasks.Tasks)
	}
}
