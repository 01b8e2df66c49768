package apps

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keelhq/keel/api/marathon"
)

func TestVersionsOverAPI(t *testing.T) {
	s := newGroupServer(t)
	var created marathon.App
	if code := s.do("POST", "/v2/apps", `{"id":"/v","cmd":"one","env":{"A":"1"}}`, &created); code != 201 {
		t.Fatalf("create: %d", code)
	}
	var res marathon.DeploymentResult
	if code := s.do("PUT", "/v2/apps/v", `{"cmd":"two","env":{}}`, &res); code != 200 {
		t.Fatalf("update: %d", code)
	}
	v2 := res.Version
	if code := s.do("PUT", "/v2/apps/v", `{"instances":3}`, &res); code != 200 {
		t.Fatalf("scale: %d", code)
	}
	v3 := res.Version
	var vs marathon.VersionsResponse
	if code := s.do("GET", "/v2/apps/v/versions", "", &vs); code != 200 || strings.Join(vs.Versions, ",") != v3+","+v2+","+created.Version {
		t.Fatalf("versions: %d %v (want %s,%s,%s)", code, vs.Versions, v3, v2, created.Version)
	}
	var old marathon.App
	if code := s.do("GET", "/v2/apps/v/versions/"+created.Version, "", &old); code != 200 || old.ID != "/v" || *old.Cmd != "one" ||
		old.Env["A"] != "1" || old.Version != created.Version {
		t.Fatalf("first version: %d %+v", code, old)
	}
	if code := s.do("GET", "/v2/apps/v/versions/2000-01-01T00:00:00.000Z", "", nil); code != 404 {
		t.Fatalf("unknown version: %d", code)
	}
	if code := s.do("GET", "/v2/apps/nope/versions", "", nil); code != 404 {
		t.Fatalf("unknown app: %d", code)
	}
	// Roll back to the first version: its command, env and instance count.
	if code := s.do("PUT", "/v2/apps/v", `{"version":"`+created.Version+`"}`, &res); code != 200 || res.Version <= v3 {
		t.Fatalf("rollback: %d %+v", code, res)
	}
	var app marathon.AppResponse
	s.do("GET", "/v2/apps/v", "", &app)
	if *app.App.Cmd != "one" || app.App.Env["A"] != "1" || *app.App.Instances != 1 || app.App.Version != res.Version ||
		app.App.VersionInfo.LastConfigChangeAt != res.Version || len(app.App.Deployments) != 1 {
		t.Fatalf("after rollback: %+v", app.App)
	}
	if code := s.do("PUT", "/v2/apps/v", `{"version":"2000-01-01T00:00:00.000Z"}`, nil); code != 404 {
		t.Fatalf("rollback to an unknown version: %d", code)
	}
	s.do("GET", "/v2/apps/v/versions", "", &vs)
	if len(vs.Versions) != 4 || vs.Versions[0] != res.Version {
		t.Fatalf("versions after rollback: %v", vs.Versions)
	}
	// Versions survive a restart and go with the app.
	f2, err := New(context.Background(), Config{Master: s.m, Store: s.f.cfg.Store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := f2.Versions("/v"); len(got) != 4 {
		t.Fatalf("versions after restart: %v", got)
	}
	if code := s.do("DELETE", "/v2/apps/v", "", nil); code != 200 {
		t.Fatal(code)
	}
	if left, _ := s.f.cfg.Store.List(context.Background(), keyVersions); len(left) != 0 {
		t.Fatalf("versions left after delete: %d", len(left))
	}
}

func TestVersionLimit(t *testing.T) {
	s := newGroupServer(t)
	ctx := context.Background()
	cmd := "x"
	if _, err := s.f.CreateApp(ctx, marathon.App{ID: "/many", Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxVersions+10; i++ {
		n := i % 3
		if _, err := s.f.UpdateApp(ctx, marathon.App{ID: "/many", Instances: &n, Env: map[string]string{"I": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := s.f.Versions("/many")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := s.f.getApp("/many")
	if len(vs) != maxVersions || vs[0] != app.Version {
		t.Fatalf("%d versions, newest %s; want %d, newest %s", len(vs), vs[0], maxVersions, app.Version)
	}
	stored, _ := s.f.cfg.Store.List(ctx, keyVersions+"/many@")
	if len(stored) != maxVersions {
		t.Fatalf("stored versions: %d", len(stored))
	}
	oldest, err := s.f.AppVersion(ctx, "/many", vs[len(vs)-1])
	if err != nil || oldest.Env["I"] != "10" {
		t.Fatalf("oldest kept: %v %+v", err, oldest.Env)
	}
}

// TestVersionsOfOlderApps checks an app stored before versions were kept
// lists and serves its current version.
func TestVersionsOfOlderApps(t *testing.T) {
	ctx := context.Background()
	store := &memStore{m: map[string][]byte{}}
	store.Put(ctx, keyApps+"/old", []byte(`{"id":"/old","cmd":"x","instances":1,"cpus":1,"mem":128,"disk":0,"backoffSeconds":1,"backoffFactor":1.15,
		"maxLaunchDelaySeconds":300,"taskKillGracePeriodSeconds":3,"version":"2025-01-01T00:00:00.000Z","versionInfo":{"lastConfigChangeAt":"2025-01-01T00:00:00.000Z"}}`))
	f, err := New(ctx, Config{Master: &fakeMaster{}, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := f.Versions("/old")
	if err != nil || len(vs) != 1 || vs[0] != "2025-01-01T00:00:00.000Z" {
		t.Fatalf("versions: %v %v", vs, err)
	}
	app, err := f.AppVersion(ctx, "/old", vs[0])
	if err != nil || *app.Cmd != "x" {
		t.Fatalf("current version: %v %+v", err, app)
	}
	// A change is stored as a version; the old current one is still listed.
	n := 2
	if _, err := f.UpdateApp(ctx, marathon.App{ID: "/old", Instances: &n}); err != nil {
		t.Fatal(err)
	}
	if vs, _ := f.Versions("/old"); len(vs) != 2 || vs[1] != "2025-01-01T00:00:00.000Z" {
		t.Fatalf("versions after a change: %v", vs)
	}
	if old, err := f.AppVersion(ctx, "/old", "2025-01-01T00:00:00.000Z"); err != nil || *old.Instances != 1 {
		t.Fatalf("old version after a change: %v %+v", err, old)
	}
}
