package apps

import (
	"context"
	"strings"
	"testing"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

func TestCancelDeployment(t *testing.T) {
	s := newGroupServer(t)
	ctx := context.Background()
	f, m := s.f, s.m
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	if code := s.do("POST", "/v2/apps", `{"id":"/d","cmd":"v1","instances":2,"cpus":0.1,"mem":16}`, nil); code != 201 {
		t.Fatal(code)
	}
	m.take()
	// launch takes an offer and reports every launched task running.
	launch := func(id string) []string {
		f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer(id)}}})
		var cmds []string
		for _, c := range m.take() {
			if c.Type != mesos.CallAccept {
				continue
			}
			for _, ti := range c.Accept.Operations[0].Launch.TaskInfos {
				cmds = append(cmds, ti.Command.Value)
				f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: ti.TaskID,
					State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
			}
		}
		return cmds
	}
	if got := launch("o1"); strings.Join(got, ",") != "v1,v1" {
		t.Fatalf("first launch: %v", got)
	}
	m.take()
	var res marathon.DeploymentResult
	if code := s.do("PUT", "/v2/apps/d", `{"cmd":"v2"}`, &res); code != 200 {
		t.Fatal(code)
	}
	var deps []deployment
	s.do("GET", "/v2/deployments", "", &deps)
	if len(deps) != 1 || deps[0].ID != res.DeploymentID || strings.Join(deps[0].AffectedApps, ",") != "/d" {
		t.Fatalf("deployments: %+v", deps)
	}
	if code := s.do("DELETE", "/v2/deployments/nope", "", nil); code != 404 {
		t.Fatalf("unknown deployment: %d", code)
	}
	// Cancel: a new deployment back to v1 replaces every task.
	var back marathon.DeploymentResult
	if code := s.do("DELETE", "/v2/deployments/"+res.DeploymentID, "", &back); code != 200 || back.DeploymentID == "" || back.DeploymentID == res.DeploymentID {
		t.Fatalf("cancel: %d %+v", code, back)
	}
	var app marathon.AppResponse
	s.do("GET", "/v2/apps/d", "", &app)
	if *app.App.Cmd != "v1" || app.App.Version != back.Version || len(app.App.Deployments) != 1 || app.App.Deployments[0].ID != back.DeploymentID {
		t.Fatalf("after cancel: %+v", app.App)
	}
	m.take()
	if got := launch("o2"); strings.Join(got, ",") != "v1,v1" {
		t.Fatalf("rollback launched %v, want v1,v1", got)
	}
	// The tasks of the old version are killed as the new ones are ready.
	f.rollStep(ctx)
	kills := 0
	for _, c := range m.take() {
		if c.Type == mesos.CallKill {
			kills++
		}
	}
	if kills != 2 {
		t.Fatalf("rollback killed %d old tasks, want 2", kills)
	}

	// A forced cancel stops where it is: nothing more is killed or launched.
	s.do("PUT", "/v2/apps/d", `{"cmd":"v3"}`, &res)
	m.take()
	f.mu.Lock()
	for _, tk := range f.apps["/d"].tasks {
		if tk.killing {
			delete(f.apps["/d"].tasks, tk.id) // the killed ones are gone
		}
	}
	f.mu.Unlock()
	if code := s.do("DELETE", "/v2/deployments/"+res.DeploymentID+"?force=true", "", nil); code != 202 {
		t.Fatalf("force cancel: %d", code)
	}
	s.do("GET", "/v2/deployments", "", &deps)
	if len(deps) != 0 {
		t.Fatalf("deployments after force: %+v", deps)
	}
	if got := launch("o3"); len(got) != 0 {
		t.Fatalf("launched %v after a forced cancel", got)
	}
	f.rollStep(ctx)
	if got := types(m.take()); got != "" {
		t.Fatalf("calls after a forced cancel: %s", got)
	}
	s.do("GET", "/v2/apps/d", "", &app)
	if *app.App.Cmd != "v3" || app.App.TasksRunning != 2 {
		t.Fatalf("after force: cmd %s, running %d", *app.App.Cmd, app.App.TasksRunning)
	}
}
