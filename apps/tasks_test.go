package apps

import (
	"context"
	"strings"
	"testing"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

func TestKillTasksOverAPI(t *testing.T) {
	ctx := context.Background()
	s := newGroupServer(t)
	f, m := s.f, s.m
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	if code := s.do("POST", "/v2/apps", `{"id":"/k","cmd":"x","instances":4,"cpus":0.1,"mem":16}`, nil); code != 201 {
		t.Fatal(code)
	}
	m.take()
	// launch takes an offer and reports every launched task running.
	launch := func(id string) []string {
		f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer(id)}}})
		var ids []string
		for _, c := range m.take() {
			if c.Type != mesos.CallAccept {
				continue
			}
			for _, ti := range c.Accept.Operations[0].Launch.TaskInfos {
				ids = append(ids, ti.TaskID.Value)
				f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: ti.TaskID,
					State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
			}
		}
		return ids
	}
	kills := func() string {
		var ids []string
		for _, c := range m.take() {
			if c.Type == mesos.CallKill {
				ids = append(ids, c.Kill.TaskID.Value)
			}
		}
		return strings.Join(ids, ",")
	}
	instances := func() int {
		var r marathon.AppResponse
		s.do("GET", "/v2/apps/k", "", &r)
		return *r.App.Instances
	}
	ids := launch("o1")
	if len(ids) != 4 {
		t.Fatalf("launched %v", ids)
	}
	m.take()

	t.Run("status filters", func(t *testing.T) {
		for q, want := range map[string]int{"": 4, "?status=running": 4, "?status=staging": 0, "?status[]=staging&status[]=running": 4} {
			var r marathon.TasksResponse
			s.do("GET", "/v2/tasks"+q, "", &r)
			if len(r.Tasks) != want {
				t.Errorf("/v2/tasks%s: %d tasks, want %d", q, len(r.Tasks), want)
			}
		}
	})
	t.Run("kill one, replaced", func(t *testing.T) {
		var r marathon.TaskResponse
		if code := s.do("DELETE", "/v2/apps/k/tasks/"+ids[0], "", &r); code != 200 || r.Task.ID != ids[0] {
			t.Fatalf("%d %+v", code, r)
		}
		if got := kills(); got != ids[0] {
			t.Fatalf("killed %s", got)
		}
		if n := instances(); n != 4 {
			t.Fatalf("instances %d", n)
		}
		if got := launch("o2"); len(got) != 1 {
			t.Fatalf("replacement: %v", got)
		}
		m.take()
	})
	t.Run("kill one with scale", func(t *testing.T) {
		var r marathon.DeploymentResult
		if code := s.do("DELETE", "/v2/apps/k/tasks/"+ids[1]+"?scale=true", "", &r); code != 200 || r.DeploymentID == "" || r.Version == "" {
			t.Fatalf("%d %+v", code, r)
		}
		if got := kills(); got != ids[1] {
			t.Fatalf("killed %s", got)
		}
		if n := instances(); n != 3 {
			t.Fatalf("instances %d, want 3", n)
		}
		if got := launch("o3"); len(got) != 0 {
			t.Fatalf("scaled-down task replaced: %v", got)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		var e marathon.Error
		if code := s.do("POST", "/v2/tasks/delete?scale=true&wipe=true", `{"ids":["`+ids[2]+`"]}`, &e); code != 400 {
			t.Fatalf("scale and wipe: %d %+v", code, e)
		}
		if code := s.do("POST", "/v2/tasks/delete", `{"ids":["`+ids[2]+`","nope.1"]}`, &e); code != 400 || e.Message != "Invalid task id nope.1" {
			t.Fatalf("unknown id: %d %+v", code, e)
		}
		if got := kills(); got != "" {
			t.Fatalf("a failed request killed %s", got)
		}
		if code := s.do("DELETE", "/v2/apps/k/tasks/other.1", "", &e); code != 404 {
			t.Fatalf("task of another app: %d", code)
		}
		if code := s.do("DELETE", "/v2/apps/nope/tasks", "", &e); code != 404 {
			t.Fatalf("unknown app: %d", code)
		}
	})
	t.Run("wipe forgets at once and kills if it reports", func(t *testing.T) {
		var r marathon.TasksResponse
		if code := s.do("POST", "/v2/tasks/delete?wipe=true", `{"ids":["`+ids[2]+`"]}`, &r); code != 200 || len(r.Tasks) != 1 || r.Tasks[0].ID != ids[2] {
			t.Fatalf("%d %+v", code, r)
		}
		if got := kills(); got != ids[2] {
			t.Fatalf("killed %s", got)
		}
		var list marathon.TasksResponse
		s.do("GET", "/v2/apps/k/tasks", "", &list)
		for _, tk := range list.Tasks {
			if tk.ID == ids[2] {
				t.Fatal("wiped task still listed")
			}
		}
		f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: ids[2]},
			State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
		if got := kills(); got != ids[2] {
			t.Fatalf("a wiped task reporting again: killed %q", got)
		}
		launch("o4") // its replacement
		m.take()
	})
	t.Run("kill all by host, with scale", func(t *testing.T) {
		var r marathon.TasksResponse
		if code := s.do("DELETE", "/v2/apps/k/tasks?host=elsewhere", "", &r); code != 200 || len(r.Tasks) != 0 {
			t.Fatalf("other host: %d %+v", code, r)
		}
		var d marathon.DeploymentResult
		if code := s.do("DELETE", "/v2/apps/k/tasks?host=h1&scale=true", "", &d); code != 200 || d.DeploymentID == "" {
			t.Fatalf("%d %+v", code, d)
		}
		// The 3 running, and the 2 killed earlier whose end the master
		// has not reported yet (asked again).
		if n := strings.Count(kills(), ",") + 1; n != 5 {
			t.Fatalf("killed %d, want 5", n)
		}
		if n := instances(); n != 0 {
			t.Fatalf("instances %d, want 0", n)
		}
	})
}
