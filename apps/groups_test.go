package apps

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

func TestResolveID(t *testing.T) {
	cases := []struct{ base, id, want string }{
		{"/prod", "web", "/prod/web"},
		{"/prod", "/db", "/db"},
		{"/prod", "../x/db", "/x/db"},
		{"/prod", "./db", "/prod/db"},
		{"/", "web", "/web"},
		{"/", "../web", "/web"},
		{"/a/b", "../../c", "/c"},
		{"/a", "", ""},
	}
	for _, c := range cases {
		if got := resolveID(c.base, c.id); got != c.want {
			t.Errorf("resolveID(%q, %q) = %q, want %q", c.base, c.id, got, c.want)
		}
	}
}

func TestBuildTree(t *testing.T) {
	apps := []marathon.App{{ID: "/prod/web", Version: "2"}, {ID: "/prod/db/pg", Version: "3"}, {ID: "/top", Version: "1"}, {ID: "/prod/api", Version: "1"}}
	root := buildTree(apps, []groupRecord{{ID: "/empty", Version: "0"}, {ID: "/prod", Dependencies: []string{"/empty"}}})
	var shape func(g marathon.Group) string
	shape = func(g marathon.Group) string {
		var parts []string
		for _, a := range g.Apps {
			parts = append(parts, a.ID)
		}
		for _, s := range g.Groups {
			parts = append(parts, shape(s))
		}
		return g.ID + "@" + g.Version + "{" + strings.Join(parts, ",") + "}"
	}
	want := "/@3{/top,/empty@0{},/prod@3{/prod/api,/prod/web,/prod/db@3{/prod/db/pg}}}"
	if got := shape(root); got != want {
		t.Fatalf("tree\n got %s\nwant %s", got, want)
	}
	prod, ok := findGroup(root, "/prod")
	if !ok || len(prod.Dependencies) != 1 || prod.Dependencies[0] != "/empty" {
		t.Fatalf("find /prod: %v %+v", ok, prod)
	}
	if _, ok := findGroup(root, "/prod/db"); !ok {
		t.Fatal("no /prod/db")
	}
	if _, ok := findGroup(root, "/prod/web"); ok {
		t.Fatal("an app found as a group")
	}
}

func TestFlattenValidation(t *testing.T) {
	cases := []struct {
		name, body string
		path       string // "" = valid
	}{
		{"valid nested", `{"id":"/prod","apps":[{"id":"web","cmd":"x"}],"groups":[{"id":"db","apps":[{"id":"pg","cmd":"x"}]}]}`, ""},
		{"bad app deep", `{"id":"/prod","groups":[{"id":"db","apps":[{"id":"ok","cmd":"x"},{"id":"pg","cmd":"x","cpus":-1}]}]}`, "/groups(0)/apps(1)/cpus"},
		{"app without command", `{"id":"/prod","apps":[{"id":"web"}]}`, "/apps(0)"},
		{"app not a child", `{"id":"/prod","apps":[{"id":"/other/web","cmd":"x"}]}`, "/apps(0)/id"},
		{"bad group id", `{"id":"/Prod"}`, "/id"},
		{"bad constraint", `{"id":"/p","apps":[{"id":"a","cmd":"x","constraints":[["hostname","NOPE"]]}]}`, "/apps(0)/constraints(0)"},
		{"subgroup elsewhere", `{"id":"/prod","groups":[{"id":"/x","apps":[{"id":"a","cmd":"x"}]}]}`, "/groups(0)/id"},
		{"subgroup too deep", `{"id":"/prod","groups":[{"id":"a/b"}]}`, "/groups(0)/id"},
		{"bad group dependency", `{"id":"/p","dependencies":["Bad_Id"]}`, "/dependencies(0)"},
		{"duplicate app", `{"id":"/p","apps":[{"id":"a","cmd":"x"},{"id":"/p/a","cmd":"x"}]}`, "/apps(1)/id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var g marathon.Group
			if err := json.Unmarshal([]byte(c.body), &g); err != nil {
				t.Fatal(err)
			}
			flat, err := flatten(g, "/")
			if c.path == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(flat.Apps) != 2 || flat.Apps[0].ID != "/prod/web" || flat.Apps[1].ID != "/prod/db/pg" {
					t.Fatalf("apps: %+v", flat.Apps)
				}
				return
			}
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

// groupServer is a framework behind a real HTTP server, with a JSON client.
type groupServer struct {
	t   *testing.T
	f   *Framework
	m   *fakeMaster
	srv *httptest.Server
}

func newGroupServer(t *testing.T) *groupServer {
	leakcheck.Check(t)
	m := &fakeMaster{}
	f, err := New(context.Background(), Config{Master: m, Store: &memStore{m: map[string][]byte{}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(srv.Close)
	return &groupServer{t: t, f: f, m: m, srv: srv}
}

func (s *groupServer) do(method, path, body string, v any) int {
	s.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, s.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			s.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func (s *groupServer) appIDs() string {
	var r marathon.AppsResponse
	s.do("GET", "/v2/apps", "", &r)
	var ids []string
	for _, a := range r.Apps {
		ids = append(ids, a.ID)
	}
	return strings.Join(ids, ",")
}

func TestGroupsOverAPI(t *testing.T) {
	s := newGroupServer(t)
	body := `{"id":"/prod","apps":[{"id":"web","cmd":"x","instances":2,"portDefinitions":[{"port":0}]}],
		"groups":[{"id":"db","apps":[{"id":"pg","cmd":"x","portDefinitions":[{"port":0}]}]},{"id":"empty"}]}`
	var res marathon.DeploymentResult
	if code := s.do("POST", "/v2/groups", body, &res); code != 201 || res.Version == "" || res.DeploymentID == "" {
		t.Fatalf("create: %d %+v", code, res)
	}
	if got := s.appIDs(); got != "/prod/db/pg,/prod/web" {
		t.Fatalf("apps: %s", got)
	}
	var root marathon.Group
	if code := s.do("GET", "/v2/groups", "", &root); code != 200 || root.ID != "/" || len(root.Groups) != 1 || root.Version != res.Version {
		t.Fatalf("root: %d %+v", code, root)
	}
	prod := root.Groups[0]
	if prod.ID != "/prod" || len(prod.Apps) != 1 || prod.Apps[0].ID != "/prod/web" || len(prod.Groups) != 2 ||
		prod.Groups[0].ID != "/prod/db" || prod.Groups[1].ID != "/prod/empty" || len(prod.Groups[1].Apps) != 0 {
		t.Fatalf("prod: %+v", prod)
	}
	// Service ports of the two new apps differ.
	if p1, p2 := prod.Apps[0].PortDefinitions[0].Port, prod.Groups[0].Apps[0].PortDefinitions[0].Port; p1 == 0 || p1 == p2 {
		t.Fatalf("service ports %d %d", p1, p2)
	}
	var db marathon.Group
	if code := s.do("GET", "/v2/groups/prod/db", "", &db); code != 200 || db.ID != "/prod/db" || len(db.Apps) != 1 {
		t.Fatalf("db: %d %+v", code, db)
	}
	if code := s.do("GET", "/v2/groups/nope", "", nil); code != 404 {
		t.Fatalf("missing group: %d", code)
	}
	// All or nothing: one bad app, nothing created.
	var verr marathon.Error
	if code := s.do("POST", "/v2/groups", `{"id":"/stage","apps":[{"id":"a","cmd":"x"},{"id":"b","cmd":"x","mem":-1}]}`, &verr); code != 422 ||
		len(verr.Details) != 1 || verr.Details[0].Path != "/apps(1)/mem" {
		t.Fatalf("bad group: %d %+v", code, verr)
	}
	if code := s.do("POST", "/v2/groups", `{"id":"/","apps":[{"id":"new","cmd":"x"}],"groups":[{"id":"prod","apps":[{"id":"web","cmd":"x"}]}]}`, nil); code != 409 {
		t.Fatalf("conflict: %d", code)
	}
	if code := s.do("POST", "/v2/groups", `{"id":"/prod"}`, nil); code != 409 {
		t.Fatalf("existing group: %d", code)
	}
	if got := s.appIDs(); got != "/prod/db/pg,/prod/web" {
		t.Fatalf("apps after refused creates: %s", got)
	}
	// scaleBy doubles every app of the group.
	if code := s.do("PUT", "/v2/groups/prod", `{"scaleBy":2}`, &res); code != 200 || res.DeploymentID == "" {
		t.Fatalf("scale: %d", code)
	}
	var app marathon.AppResponse
	s.do("GET", "/v2/apps/prod/web", "", &app)
	if *app.App.Instances != 4 {
		t.Fatalf("web instances %d, want 4", *app.App.Instances)
	}
	s.do("GET", "/v2/apps/prod/db/pg", "", &app)
	if *app.App.Instances != 2 {
		t.Fatalf("pg instances %d, want 2", *app.App.Instances)
	}
	webPort := prod.Apps[0].PortDefinitions[0].Port
	// PUT replaces the group: web is updated (keeping its service port),
	// api is created, db/pg is removed.
	if code := s.do("PUT", "/v2/groups/prod", `{"apps":[{"id":"web","cmd":"y","portDefinitions":[{"port":0}]},{"id":"api","cmd":"x"}]}`, &res); code != 200 {
		t.Fatalf("update: %d", code)
	}
	if got := s.appIDs(); got != "/prod/api,/prod/web" {
		t.Fatalf("apps after PUT: %s", got)
	}
	s.do("GET", "/v2/apps/prod/web", "", &app)
	if *app.App.Cmd != "y" || app.App.PortDefinitions[0].Port != webPort || app.App.Version != res.Version || len(app.App.Deployments) != 1 {
		t.Fatalf("web after PUT: %+v", app.App)
	}
	if code := s.do("GET", "/v2/groups/prod/db", "", nil); code != 404 {
		t.Fatalf("db after PUT: %d", code)
	}
	// DELETE removes everything under the group.
	if code := s.do("POST", "/v2/apps", `{"id":"/keep","cmd":"x"}`, nil); code != 201 {
		t.Fatal(code)
	}
	if code := s.do("DELETE", "/v2/groups/prod", "", &res); code != 200 || res.DeploymentID == "" {
		t.Fatalf("delete: %d", code)
	}
	if got := s.appIDs(); got != "/keep" {
		t.Fatalf("apps after DELETE: %s", got)
	}
	if code := s.do("DELETE", "/v2/groups/prod", "", nil); code != 404 {
		t.Fatalf("delete again: %d", code)
	}
	if code := s.do("POST", "/v2/groups", `{"id":"/keep","apps":[{"id":"x","cmd":"x"}]}`, nil); code != 409 {
		t.Fatalf("group with an app's ID: %d", code)
	}
}

// TestDependencies checks that an app is not launched before the app it
// depends on has all its instances running and healthy.
func TestDependencies(t *testing.T) {
	s := newGroupServer(t)
	ctx := context.Background()
	f, m := s.f, s.m
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	body := `{"id":"/shop","apps":[
		{"id":"db","cmd":"db","instances":2,"cpus":0.1,"mem":16,"healthChecks":[{"protocol":"COMMAND","command":{"value":"true"}}]},
		{"id":"web","cmd":"web","cpus":0.1,"mem":16,"dependencies":["db"]}]}`
	if code := s.do("POST", "/v2/groups", body, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var web marathon.AppResponse
	s.do("GET", "/v2/apps/shop/web", "", &web)
	if len(web.App.Dependencies) != 1 || web.App.Dependencies[0] != "/shop/db" {
		t.Fatalf("dependencies not resolved: %v", web.App.Dependencies)
	}
	m.take()
	launchedApps := func(o mesos.Offer) []string {
		f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{o}}})
		var out []string
		for _, c := range m.take() {
			if c.Type == mesos.CallAccept {
				for _, ti := range c.Accept.Operations[0].Launch.TaskInfos {
					id, _ := appIDOfTask(ti.TaskID.Value)
					out = append(out, id)
				}
			}
		}
		return out
	}
	got := launchedApps(offer("o1"))
	if strings.Join(got, ",") != "/shop/db,/shop/db" {
		t.Fatalf("first offer launched %v, want only db", got)
	}
	var dbTasks []string
	f.mu.Lock()
	for id := range f.apps["/shop/db"].tasks {
		dbTasks = append(dbTasks, id)
	}
	f.mu.Unlock()
	status := func(id string, healthy *bool) {
		f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id},
			State: mesos.TaskRunning, AgentID: mesos.NewID("A1"), Healthy: healthy}}})
	}
	yes, no := true, false
	// Running but not yet healthy, or only one of two healthy: web waits.
	status(dbTasks[0], nil)
	status(dbTasks[1], &no)
	if got := launchedApps(offer("o2")); len(got) != 0 {
		t.Fatalf("launched %v while db is not healthy", got)
	}
	status(dbTasks[0], &yes)
	if got := launchedApps(offer("o3")); len(got) != 0 {
		t.Fatalf("launched %v with one of two db tasks healthy", got)
	}
	status(dbTasks[1], &yes)
	if got := launchedApps(offer("o4")); strings.Join(got, ",") != "/shop/web" {
		t.Fatalf("launched %v once db is healthy, want web", got)
	}
}

// TestGroupDependencies checks a group's dependencies hold for its apps,
// and that an app depending on a missing app waits.
func TestGroupDependencies(t *testing.T) {
	s := newGroupServer(t)
	if code := s.do("POST", "/v2/groups", `{"id":"/front","dependencies":["/back"],"apps":[{"id":"ui","cmd":"x"}]}`, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var g marathon.Group
	s.do("GET", "/v2/groups/front", "", &g)
	if len(g.Dependencies) != 1 || g.Dependencies[0] != "/back" {
		t.Fatalf("group deps: %+v", g)
	}
	s.f.mu.Lock()
	n := len(s.f.needs(time.Now()))
	s.f.mu.Unlock()
	if n != 0 {
		t.Fatalf("/front/ui wants launching before /back exists")
	}
	if code := s.do("POST", "/v2/apps", `{"id":"/back/api","cmd":"x","instances":0}`, nil); code != 201 {
		t.Fatal(code)
	}
	s.f.mu.Lock()
	needs := s.f.needs(time.Now())
	s.f.mu.Unlock()
	if len(needs) != 1 || needs[0].App.ID != "/front/ui" {
		t.Fatalf("needs once /back is ready: %+v", needs)
	}
}

func TestDependencyCycle(t *testing.T) {
	app := func(id string, deps ...string) marathon.App { return marathon.App{ID: id, Dependencies: deps} }
	cases := []struct {
		name   string
		apps   []marathon.App
		groups []groupRecord
		want   string
	}{
		{"none", []marathon.App{app("/a", "/b"), app("/b")}, nil, ""},
		{"two apps", []marathon.App{app("/a", "/b"), app("/b", "/a")}, nil, "/a -> /b -> /a"},
		{"three apps", []marathon.App{app("/a", "/b"), app("/b", "/c"), app("/c", "/a")}, nil, "/a -> /b -> /c -> /a"},
		{"through a group", []marathon.App{app("/front/ui", "/back"), app("/back/api")}, []groupRecord{{ID: "/back", Dependencies: []string{"/front"}}}, "/back/api -> /front/ui -> /back/api"},
		{"chain into a group", []marathon.App{app("/x/a", "/y"), app("/y/b"), app("/y/c", "/y/b")}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			apps := map[string]marathon.App{}
			for _, a := range c.apps {
				apps[a.ID] = a
			}
			groups := map[string]groupRecord{}
			for _, g := range c.groups {
				groups[g.ID] = g
			}
			if got := dependencyCycle(apps, groups); got != c.want {
				t.Fatalf("cycle %q, want %q", got, c.want)
			}
		})
	}
}

func TestDependencyCycleRefused(t *testing.T) {
	s := newGroupServer(t)
	var verr marathon.Error
	body := `{"id":"/c","apps":[{"id":"a","cmd":"x","dependencies":["b"]},{"id":"b","cmd":"x","dependencies":["a"]}]}`
	if code := s.do("POST", "/v2/groups", body, &verr); code != 422 || len(verr.Details) != 1 || verr.Details[0].Path != "/dependencies" {
		t.Fatalf("cycle in a group: %d %+v", code, verr)
	}
	if code := s.do("POST", "/v2/apps", `{"id":"/a","cmd":"x","dependencies":["/b"]}`, nil); code != 201 {
		t.Fatal(code)
	}
	if code := s.do("POST", "/v2/apps", `{"id":"/b","cmd":"x","dependencies":["/a"]}`, nil); code != 422 {
		t.Fatalf("cycle by a new app: %d", code)
	}
	if code := s.do("POST", "/v2/apps", `{"id":"/b","cmd":"x"}`, nil); code != 201 {
		t.Fatal(code)
	}
	if code := s.do("PUT", "/v2/apps/b", `{"dependencies":["/a"]}`, nil); code != 422 {
		t.Fatalf("cycle by an update: %d", code)
	}
	if code := s.do("POST", "/v2/apps", `{"id":"/self","cmd":"x","dependencies":["/self"]}`, &verr); code != 422 || verr.Details[0].Path != "/dependencies(0)" {
		t.Fatalf("self dependency: %d %+v", code, verr)
	}
}
