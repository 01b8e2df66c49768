package apps

import (
	"strings"
	"testing"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name, body, path string
	}{
		{"missing id", `{"cmd":"x"}`, "/id"},
		{"bad id", `{"id":"/Web_App","cmd":"x"}`, "/id"},
		{"no command", `{"id":"/a"}`, "/"},
		{"cmd and args", `{"id":"/a","cmd":"x","args":["y"]}`, "/"},
		{"negative cpus", `{"id":"/a","cmd":"x","cpus":-1}`, "/cpus"},
		{"negative instances", `{"id":"/a","cmd":"x","instances":-2}`, "/instances"},
		{"port out of range", `{"id":"/a","cmd":"x","portDefinitions":[{"port":70000}]}`, "/portDefinitions(0)/port"},
		{"duplicate ports", `{"id":"/a","cmd":"x","portDefinitions":[{"port":10001},{"port":10001}]}`, "/portDefinitions(1)/port"},
		{"bad protocol", `{"id":"/a","cmd":"x","portDefinitions":[{"port":0,"protocol":"sctp"}]}`, "/portDefinitions(0)/protocol"},
		{"wrong type", `{"id":"/a","cmd":"x","cpus":"many"}`, "/cpus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var app marathon.App
			err := decodeApp([]byte(c.body), &app)
			if err == nil {
				err = validate(&app)
			}
			v, ok := err.(*validationError)
			if !ok {
				t.Fatalf("want a validation error, got %v", err)
			}
			found := false
			for _, d := range v.details {
				found = found || d.Path == c.path
			}
			if !found {
				t.Fatalf("no error at %s: %+v", c.path, v.details)
			}
		})
	}
	var app marathon.App
	if err := decodeApp([]byte(`{"id":"prod/web","cmd":"x"}`), &app); err != nil {
		t.Fatal(err)
	}
	if err := validate(&app); err != nil {
		t.Fatal(err)
	}
	if app.ID != "/prod/web" || *app.CPUs != 1 || *app.Mem != 128 || *app.Instances != 1 {
		t.Fatalf("defaults: %+v", app)
	}
	if err := decodeApp([]byte(`{`), &app); err == nil || !strings.Contains(err.Error(), "Invalid JSON") {
		t.Fatalf("bad json: %v", err)
	}
}

func TestNames(t *testing.T) {
	if got := taskName("/prod/web"); got != "web.prod" {
		t.Fatal(got)
	}
	id := newTaskID("/prod/web")
	if !strings.HasPrefix(id, "prod_web.") {
		t.Fatal(id)
	}
	if app, ok := appIDOfTask(id); !ok || app != "/prod/web" {
		t.Fatal(app)
	}
}

func TestPlace(t *testing.T) {
	res, _ := mesos.ParseResources("cpus:1;mem:512;ports:[31000-31002]")
	offer := mesos.Offer{ID: mesos.ID{Value: "o"}, AgentID: mesos.ID{Value: "a"}, Hostname: "h", Resources: res}
	cmd := "serve"
	app := marathon.App{ID: "/web", Cmd: &cmd, PortDefinitions: []marathon.PortDefinition{{Port: 10000, Name: "http"}}, Labels: map[string]string{"HAPROXY_0_VHOST": "w.example.com"}}
	if err := validate(&app); err != nil {
		t.Fatal(err)
	}
	*app.CPUs = 0.25
	n := 0
	ls, _ := place(offer, []need{{App: &app, Count: 5}}, func(string) string { n++; return "web." + string(rune('0'+n)) })
	// Three ports in the offer: three instances, each with its own port.
	if len(ls) != 3 {
		t.Fatalf("placed %d, want 3", len(ls))
	}
	seen := map[int]bool{}
	for _, l := range ls {
		p := l.HostPorts[0]
		if seen[p] || p < 31000 || p > 31002 {
			t.Fatalf("bad host port %d", p)
		}
		seen[p] = true
		env := map[string]string{}
		for _, v := range l.Task.Command.Environment.Variables {
			env[v.Name] = v.Value
		}
		if env["PORT0"] != env["PORT"] || env["PORT_HTTP"] != env["PORT0"] || env["MARATHON_APP_ID"] != "/web" || env["HOST"] != "h" || env["MESOS_TASK_ID"] != l.Task.TaskID.Value {
			t.Fatalf("env: %v", env)
		}
		if l.Task.Name != "web" || l.Task.Discovery.Ports.Ports[0].Labels.Labels[0].Value != "10000" {
			t.Fatalf("discovery: %+v", l.Task.Discovery)
		}
		if v, _ := l.Task.Labels.Get(mesos.LabelAppID); v != "/web" {
			t.Fatal("no app id label")
		}
	}
	// requirePorts: the host port is the service port, which is not offered.
	app.RequirePorts = true
	if ls, _ := place(offer, []need{{App: &app, Count: 1}}, func(string) string { return "x.1" }); len(ls) != 0 {
		t.Fatalf("placed with a required port not in the offer: %+v", ls)
	}
}

func TestHealthCheckTranslation(t *testing.T) {
	cmd := "serve"
	idx := 1
	app := marathon.App{ID: "/h", Cmd: &cmd, PortDefinitions: []marathon.PortDefinition{{}, {}},
		HealthChecks: []marathon.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/health", PortIndex: &idx, IntervalSeconds: 2}}}
	if err := validate(&app); err != nil {
		t.Fatal(err)
	}
	hc := healthCheck(&app, []int{31000, 31001})
	if hc.Type != "HTTP" || hc.HTTP.Port != 31001 || hc.HTTP.Path != "/health" || hc.IntervalSeconds != 2 || hc.GracePeriodSeconds != 300 || hc.ConsecutiveFailures != 3 {
		t.Fatalf("translated: %+v %+v", hc, hc.HTTP)
	}
	bad := 5
	app.HealthChecks[0].PortIndex = &bad
	if err := validate(&app); err == nil || !strings.Contains(err.Error(), "/healthChecks(0)/portIndex") {
		t.Fatalf("bad port index: %v", err)
	}
	app.HealthChecks[0] = marathon.HealthCheck{Protocol: "SMTP"}
	if err := validate(&app); err == nil || !strings.Contains(err.Error(), "/healthChecks(0)/protocol") {
		t.Fatalf("bad protocol: %v", err)
	}
}

// Marathon's fetch and uris reach the TaskInfo as CommandInfo.uris, with
// extract left to the agent's default unless the app says false.
func TestFetchURIs(t *testing.T) {
	no := false
	app := &marathon.App{URIs: []string{"http://x/a.tgz"}, Fetch: []marathon.Fetch{
		{URI: "http://x/bin", Executable: true, Extract: &no, OutputFile: "tool"}, {URI: "http://x/c.zip", Cache: true}}}
	got := fetchURIs(app)
	if len(got) != 3 || got[0].Value != "http://x/a.tgz" || got[0].Extract != nil ||
		!got[1].Executable || got[1].Extract == nil || *got[1].Extract || got[1].OutputFile != "tool" || !got[2].Cache {
		t.Fatalf("uris: %+v", got)
	}
	bad := &marathon.App{ID: "/a", Cmd: func() *string { s := "true"; return &s }(), Fetch: []marathon.Fetch{{URI: " "}}}
	defaults(bad)
	if err := validate(bad); err == nil || !strings.Contains(err.Error(), "fetch(0)") {
		t.Fatalf("empty fetch uri: %v", err)
	}
}
