package apps

import (
	"context"
	"testing"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// A deployment in progress survives a restart of the framework with its
// ID and the definition a cancel goes back to; once it ends, its record
// goes too.
func TestDeploymentSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	store := &memStore{m: map[string][]byte{}}
	m := &fakeMaster{}
	f, err := New(ctx, Config{Master: m, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	cmd, cmd2 := "v1", "v2"
	if _, err := f.CreateApp(ctx, marathon.App{ID: "/d", Cmd: &cmd}); err != nil {
		t.Fatal(err)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o1")}}})
	var tid mesos.ID
	for _, c := range m.take() {
		if c.Type == mesos.CallAccept {
			tid = c.Accept.Operations[0].Launch.TaskInfos[0].TaskID
		}
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: tid, State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
	res, err := f.UpdateApp(ctx, marathon.App{ID: "/d", Cmd: &cmd2})
	if err != nil || res.DeploymentID == "" {
		t.Fatalf("update: %+v %v", res, err)
	}
	f.saveDeployments(ctx)

	f2, err := New(ctx, Config{Master: &fakeMaster{}, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	f2.mu.Lock()
	a := f2.apps["/d"]
	got, prev := a.deployment, a.prevDef
	f2.mu.Unlock()
	if got != res.DeploymentID || prev == nil || prev.Cmd == nil || *prev.Cmd != "v1" {
		t.Fatalf("after restart: deployment %q prev %+v, want %s back to v1", got, prev, res.DeploymentID)
	}
	// It ends: the record goes.
	f2.mu.Lock()
	a.deployment, a.prevDef = "", nil
	f2.mu.Unlock()
	f2.saveDeployments(ctx)
	if left, _ := store.List(ctx, keyDeployments); len(left) != 0 {
		t.Fatalf("records left: %v", left)
	}
}
