package apps

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

func TestReadinessValidation(t *testing.T) {
	s := newGroupServer(t)
	for i, tc := range []struct {
		check string
		code  int
		path  string
	}{
		{`{}`, 201, ""}, // portName defaults to http-api
		{`{"portName":"web"}`, 422, "/readinessChecks(0)/portName"},
		{`{"portName":"Bad_Name"}`, 422, "/readinessChecks(0)/portName"},
		{`{"protocol":"TCP"}`, 422, "/readinessChecks(0)/protocol"},
		{`{"path":"ready"}`, 422, "/readinessChecks(0)/path"},
		{`{"intervalSeconds":5,"timeoutSeconds":5}`, 422, "/readinessChecks(0)/timeoutSeconds"},
		{`{"intervalSeconds":0}`, 422, "/readinessChecks(0)/intervalSeconds"},
		{`{"timeoutSeconds":0}`, 422, "/readinessChecks(0)/timeoutSeconds"},
		{`{"httpStatusCodesForReady":[200,99]}`, 422, "/readinessChecks(0)/httpStatusCodesForReady(1)"},
		{`{"httpStatusCodesForReady":[200,200]}`, 422, "/readinessChecks(0)/httpStatusCodesForReady(1)"},
	} {
		t.Run(tc.check, func(t *testing.T) {
			var e marathon.Error
			body := fmt.Sprintf(`{"id":"/r%d","cmd":"x","portDefinitions":[{"port":0,"name":"http-api"}],"readinessChecks":[%s]}`, i, tc.check)
			if code := s.do("POST", "/v2/apps", body, &e); code != tc.code {
				t.Fatalf("code %d, want %d: %+v", code, tc.code, e)
			}
			if tc.path != "" && (len(e.Details) != 1 || e.Details[0].Path != tc.path) {
				t.Fatalf("details %+v, want %s", e.Details, tc.path)
			}
		})
	}
	var app marathon.AppResponse
	s.do("GET", "/v2/apps/r0", "", &app)
	rc := app.App.ReadinessChecks
	if len(rc) != 1 || rc[0].Name != "readinessCheck" || rc[0].Protocol != "HTTP" || rc[0].Path != "/" || *rc[0].IntervalSeconds != 30 ||
		*rc[0].TimeoutSeconds != 10 || fmt.Sprint(rc[0].HTTPStatusCodesForReady) != "[200]" {
		t.Fatalf("defaults: %+v", rc)
	}
}

// backend is a task's HTTP endpoint that answers 503 until made ready.
type backend struct {
	srv   *httptest.Server
	ready atomic.Bool
	hits  atomic.Int32
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		if !b.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "warming up")
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) port(t *testing.T) int {
	_, p, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// offerAt offers a host on 127.0.0.1 with exactly one port.
func offerAt(id string, port int) mesos.Offer {
	res, _ := mesos.ParseResources(fmt.Sprintf("cpus:4;mem:4096;ports:[%d-%d]", port, port))
	return mesos.Offer{ID: mesos.ID{Value: id}, AgentID: mesos.ID{Value: "A1"}, Hostname: "127.0.0.1", Resources: res}
}

// TestReadinessGatesRollingUpgrade: the new task of a deployment is
// checked by the framework over HTTP; the old task is killed only once
// the new one answers ready, and the deployment lists the results.
func TestReadinessGatesRollingUpgrade(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := newClockServer(t, clk)
	f, m := s.f, s.m
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	oldB, newB := newBackend(t), newBackend(t)
	oldB.ready.Store(true)
	body := `{"id":"/r","cmd":"v1","cpus":0.1,"mem":16,"portDefinitions":[{"port":0,"name":"http"}],
		"readinessChecks":[{"name":"warm","portName":"http","path":"/ready","intervalSeconds":5,"timeoutSeconds":2,"preserveLastResponse":true}]}`
	if code := s.do("POST", "/v2/apps", body, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	m.take()
	launch := func(o mesos.Offer) string {
		f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{o}}})
		for _, c := range m.take() {
			if c.Type == mesos.CallAccept {
				id := c.Accept.Operations[0].Launch.TaskInfos[0].TaskID.Value
				f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id},
					State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
				return id
			}
		}
		t.Fatal("offer not accepted")
		return ""
	}
	kills := func() []string {
		var ids []string
		for _, c := range m.take() {
			if c.Type == mesos.CallKill {
				ids = append(ids, c.Kill.TaskID.Value)
			}
		}
		return ids
	}
	oldID := launch(offerAt("o1", oldB.port(t)))
	f.probeReadiness(ctx)
	if oldB.hits.Load() != 1 {
		t.Fatalf("first task checked %d times", oldB.hits.Load())
	}
	var res marathon.DeploymentResult
	if code := s.do("PUT", "/v2/apps/r", `{"cmd":"v2"}`, &res); code != 200 {
		t.Fatalf("update: %d", code)
	}
	m.take()
	newID := launch(offerAt("o2", newB.port(t)))
	f.probeReadiness(ctx)
	if got := kills(); len(got) != 0 {
		t.Fatalf("killed %v before the new task was ready", got)
	}
	var deps []deployment
	s.do("GET", "/v2/deployments", "", &deps)
	if len(deps) != 1 || deps[0].ID != res.DeploymentID || len(deps[0].ReadinessCheckResults) != 1 {
		t.Fatalf("deployments: %+v", deps)
	}
	r := deps[0].ReadinessCheckResults[0]
	if r.Name != "warm" || r.TaskID != newID || r.Ready || r.LastResponse == nil || r.LastResponse.Status != 503 ||
		r.LastResponse.Body != "warming up" || r.LastResponse.ContentType != "text/plain" {
		t.Fatalf("readiness result: %+v %+v", r, r.LastResponse)
	}
	// The wire names, as Marathon's.
	var raw []map[string]any
	s.do("GET", "/v2/deployments", "", &raw)
	rr, _ := raw[0]["readinessCheckResults"].([]any)
	if len(rr) != 1 {
		t.Fatalf("readinessCheckResults: %v", raw[0])
	}
	first := rr[0].(map[string]any)
	last, _ := first["lastResponse"].(map[string]any)
	if first["taskId"] != newID || first["ready"] != false || first["name"] != "warm" || last["status"] != 503.0 || last["contentType"] != "text/plain" {
		t.Fatalf("wire form: %v", first)
	}
	// Not due again before intervalSeconds.
	clk.Advance(4 * time.Second)
	f.probeReadiness(ctx)
	if n := newB.hits.Load(); n != 1 {
		t.Fatalf("checked %d times within the interval", n)
	}
	newB.ready.Store(true)
	clk.Advance(time.Second)
	f.probeReadiness(ctx)
	if got := kills(); strings.Join(got, ",") != oldID {
		t.Fatalf("killed %v once ready, want the old %s", got, oldID)
	}
	s.do("GET", "/v2/deployments", "", &deps)
	if len(deps) != 1 || !deps[0].ReadinessCheckResults[0].Ready || deps[0].ReadinessCheckResults[0].LastResponse.Status != 200 {
		t.Fatalf("after ready: %+v", deps)
	}
	// A ready task is not checked again; the old one ends; done.
	clk.Advance(time.Minute)
	f.probeReadiness(ctx)
	if n := newB.hits.Load(); n != 2 {
		t.Fatalf("ready task checked again: %d", n)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: oldID},
		State: mesos.TaskKilled, AgentID: mesos.NewID("A1")}}})
	s.do("GET", "/v2/deployments", "", &deps)
	if len(deps) != 0 {
		t.Fatalf("deployment not finished: %+v", deps)
	}
	for result, want := range map[string]float64{"ready": 2, "not_ready": 1, "error": 0} {
		var mv dto.Metric
		if err := f.metrics.readiness.WithLabelValues(result).Write(&mv); err != nil {
			t.Fatal(err)
		}
		if got := mv.GetCounter().GetValue(); got != want {
			t.Errorf("keel_apps_readiness_checks_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// TestReadinessTimeout: a task that does not answer within timeoutSeconds
// is not ready, and the check does not hang.
func TestReadinessTimeout(t *testing.T) {
	ctx := context.Background()
	s := newGroupServer(t)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })
	start := time.Now()
	ready, resp, err := s.f.runProbe(ctx, readinessProbe{appID: "/h", taskID: "h.1", url: hung.URL + "/",
		check: marathon.ReadinessCheck{TimeoutSeconds: ptr(1), HTTPStatusCodesForReady: []int{200}}})
	if ready || resp != nil || err == nil {
		t.Fatalf("hung task: ready=%v resp=%v err=%v", ready, resp, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("check took %v with a 1s timeout", took)
	}
}

func ptr[T any](v T) *T { return &v }
