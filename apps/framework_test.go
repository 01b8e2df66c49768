package apps

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// memStore is an in-memory Store.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) List(_ context.Context, prefix string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range s.m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out, nil
}

// fakeMaster records calls; the test feeds events through handle.
type fakeMaster struct {
	mu    sync.Mutex
	calls []mesos.Call
}

func (m *fakeMaster) Subscribe(ctx context.Context, _ mesos.FrameworkInfo, _ func(mesos.Event)) error {
	<-ctx.Done()
	return ctx.Err()
}

func (m *fakeMaster) Call(_ context.Context, c mesos.Call) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, c)
	return nil
}

func (m *fakeMaster) take() []mesos.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.calls
	m.calls = nil
	return out
}

func offer(id string) mesos.Offer {
	res, _ := mesos.ParseResources("cpus:4;mem:4096;ports:[31000-31100]")
	return mesos.Offer{ID: mesos.ID{Value: id}, AgentID: mesos.ID{Value: "A1"}, Hostname: "h1", Resources: res}
}

func types(calls []mesos.Call) string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Type)
	}
	return strings.Join(out, ",")
}

func TestLaunchScaleAndRecover(t *testing.T) {
	ctx := context.Background()
	store := &memStore{m: map[string][]byte{}}
	m := &fakeMaster{}
	f, err := New(ctx, Config{Master: m, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	cmd, n := "serve", 2
	if _, err := f.CreateApp(ctx, marathon.App{ID: "/web", Cmd: &cmd, Instances: &n, PortDefinitions: []marathon.PortDefinition{{}}}); err != nil {
		t.Fatal(err)
	}
	m.take()
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o1")}}})
	calls := m.take()
	if types(calls) != "ACCEPT" || len(calls[0].Accept.Operations[0].Launch.TaskInfos) != 2 {
		t.Fatalf("want one ACCEPT launching 2, got %s", types(calls))
	}
	launched := calls[0].Accept.Operations[0].Launch.TaskInfos
	if recs, _ := store.List(ctx, keyTasks); len(recs) != 2 {
		t.Fatalf("task records: %d", len(recs))
	}
	// RUNNING is acknowledged; a full app declines further offers.
	for _, ti := range launched {
		f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: ti.TaskID,
			State: mesos.TaskRunning, AgentID: mesos.NewID("A1"), UUID: []byte("u")}}})
	}
	if got := types(m.take()); got != "ACKNOWLEDGE,ACKNOWLEDGE" {
		t.Fatalf("acks: %s", got)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o2")}}})
	if got := types(m.take()); got != "DECLINE" {
		t.Fatalf("full app: %s", got)
	}

	// A new framework on the same store (a restart) knows both tasks before
	// the master says anything: it reconciles them and launches nothing.
	m2 := &fakeMaster{}
	f2, err := New(ctx, Config{Master: m2, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	f2.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	calls = m2.take()
	if types(calls) != "RECONCILE,RECONCILE,REVIVE" || len(calls[0].Reconcile.Tasks) != 2 {
		t.Fatalf("after restart: %s", types(calls))
	}
	f2.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o3")}}})
	if got := types(m2.take()); got != "DECLINE" {
		t.Fatalf("launched before reconciliation: %s", got)
	}
	if got := len(f2.reconcileList(true)); got != 2 {
		t.Fatalf("unconfirmed: %d", got)
	}
	// One is confirmed running, the other is unknown to the master: only
	// that one is replaced.
	f2.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: launched[0].TaskID,
		State: mesos.TaskRunning, AgentID: mesos.NewID("A1"), Reason: mesos.ReasonReconciliation}}})
	f2.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: launched[1].TaskID,
		State: mesos.TaskUnknown, AgentID: mesos.NewID("A1"), Reason: mesos.ReasonReconciliation}}})
	m2.take()
	f2.mu.Lock()
	f2.apps["/web"].delayUntil = time.Time{} // skip the relaunch backoff
	f2.mu.Unlock()
	f2.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o4")}}})
	calls = m2.take()
	if types(calls) != "ACCEPT" || len(calls[0].Accept.Operations[0].Launch.TaskInfos) != 1 {
		t.Fatalf("replacement: %s", types(calls))
	}
	// Scale down to 1: the youngest task is killed.
	one := 1
	if _, err := f2.UpdateApp(ctx, marathon.App{ID: "/web", Instances: &one}); err != nil {
		t.Fatal(err)
	}
	calls = m2.take()
	if types(calls) != "KILL" {
		t.Fatalf("scale down: %s", types(calls))
	}
	if calls[0].Kill.TaskID == launched[0].TaskID {
		t.Fatal("scale down killed the oldest task")
	}
}

func TestEventStream(t *testing.T) {
	ctx := context.Background()
	f, err := New(ctx, Config{Master: &fakeMaster{}, Store: &memStore{m: map[string][]byte{}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/events?event_type=api_post_event&event_type=app_terminated_event")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	next := func() string {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "event: ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "event: "))
			}
		}
	}
	if ev := next(); ev != "event_stream_attached" {
		t.Fatalf("first event %q", ev)
	}
	cmd := "x"
	f.CreateApp(ctx, marathon.App{ID: "/e", Cmd: &cmd})
	// A status update is filtered out; the next event we see is the delete.
	f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: "e.1"}, State: mesos.TaskRunning}}})
	f.DeleteApp(ctx, "/e")
	if ev := next(); ev != "api_post_event" {
		t.Fatalf("got %q", ev)
	}
	if ev := next(); ev != "app_terminated_event" {
		t.Fatalf("got %q", ev)
	}
}

func TestQueueAndLabelFilter(t *testing.T) {
	ctx := context.Background()
	f, err := New(ctx, Config{Master: &fakeMaster{}, Store: &memStore{m: map[string][]byte{}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cmd, two := "x", 2
	f.CreateApp(ctx, marathon.App{ID: "/a", Cmd: &cmd, Instances: &two, Labels: map[string]string{"tier": "web"}})
	f.CreateApp(ctx, marathon.App{ID: "/b", Cmd: &cmd, Labels: map[string]string{"tier": "db"}})
	f.mu.Lock()
	f.apps["/a"].delayUntil = time.Now().Add(30 * time.Second)
	f.mu.Unlock()
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	getJSON := func(path string, v any) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(v)
		return resp.StatusCode
	}
	var q struct {
		Queue []queued `json:"queue"`
	}
	getJSON("/v2/queue", &q)
	if len(q.Queue) != 2 || q.Queue[0].Count != 2 || q.Queue[0].Delay.TimeLeftSeconds < 29 || !q.Queue[1].Delay.Overdue {
		t.Fatalf("queue: %+v", q)
	}
	req, _ := http.NewRequest("DELETE", srv.URL+"/v2/queue/a/delay", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("reset delay: %v %v", err, resp)
	}
	getJSON("/v2/queue", &q)
	if !q.Queue[0].Delay.Overdue {
		t.Fatalf("delay not reset: %+v", q.Queue[0])
	}
	for sel, want := range map[string]int{"tier": 2, "tier==web": 1, "tier!=web": 1, "nope": 0} {
		var r marathon.AppsResponse
		getJSON("/v2/apps?label="+url.QueryEscape(sel), &r)
		if len(r.Apps) != want {
			t.Errorf("label=%s: %d apps, want %d", sel, len(r.Apps), want)
		}
	}
}

// Marathon's instance_changed_event follows every status, and an
// unhealthy result also gives failed_health_check_event.
func TestInstanceAndHealthEvents(t *testing.T) {
	ctx := context.Background()
	m := &fakeMaster{}
	f, err := New(ctx, Config{Master: m, Store: &memStore{m: map[string][]byte{}}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/events?event_type=instance_changed_event&event_type=failed_health_check_event")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	next := func() (string, string) {
		var ev string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "event: ") {
				ev = strings.TrimSpace(strings.TrimPrefix(line, "event: "))
			}
			if strings.HasPrefix(line, "data: ") && ev != "event_stream_attached" {
				return ev, line
			}
		}
	}
	cmd := "x"
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	if _, err := f.CreateApp(ctx, marathon.App{ID: "/h", Cmd: &cmd, PortDefinitions: []marathon.PortDefinition{{}},
		HealthChecks: []marathon.HealthCheck{{Protocol: "MESOS_HTTP", Path: "/"}}}); err != nil {
		t.Fatal(err)
	}
	m.take()
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o1")}}})
	launched := m.take()
	var id mesos.ID
	for _, c := range launched {
		if c.Type == mesos.CallAccept {
			id = c.Accept.Operations[0].Launch.TaskInfos[0].TaskID
		}
	}
	if id.Value == "" {
		t.Fatalf("no launch: %s", types(launched))
	}
	no := false
	f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: id, State: mesos.TaskRunning, AgentID: mesos.NewID("A1"), Healthy: &no}}})
	if ev, data := next(); ev != "instance_changed_event" || !strings.Contains(data, `"condition":"Running"`) || !strings.Contains(data, `"runSpecId":"/h"`) {
		t.Fatalf("got %s %s", ev, data)
	}
	if ev, data := next(); ev != "failed_health_check_event" || !strings.Contains(data, id.Value) {
		t.Fatalf("got %s %s", ev, data)
	}
}
