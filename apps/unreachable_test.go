package apps

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

// fakeClock is a Config.Clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newClockServer is newGroupServer with an injected clock.
func newClockServer(t *testing.T, clk *fakeClock) *groupServer {
	leakcheck.Check(t)
	m := &fakeMaster{}
	f, err := New(context.Background(), Config{Master: m, Store: &memStore{m: map[string][]byte{}}, Listen: "127.0.0.1:0", Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	t.Cleanup(srv.Close)
	return &groupServer{t: t, f: f, m: m, srv: srv}
}

func TestUnreachablePhase(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	def := unreachablePolicy{inactive: 300 * time.Second, purge: 600 * time.Second}
	zero := unreachablePolicy{}
	for _, tc := range []struct {
		name string
		p    unreachablePolicy
		for_ time.Duration
		want unreachablePhase
	}{
		{"default, just cut off", def, 0, phaseCounted},
		{"default, before inactive", def, 299 * time.Second, phaseCounted},
		{"default, at inactive", def, 300 * time.Second, phaseInactive},
		{"default, before expunge", def, 599 * time.Second, phaseInactive},
		{"default, at expunge", def, 600 * time.Second, phaseExpunged},
		{"zero: expunged at once", zero, 0, phaseExpunged},
		{"inactive 0, expunge 60", unreachablePolicy{purge: time.Minute}, 0, phaseInactive},
		{"disabled never moves", unreachablePolicy{disabled: true}, 1000 * time.Hour, phaseCounted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.phase(t0, t0.Add(tc.for_)); got != tc.want {
				t.Fatalf("phase after %v = %d, want %d", tc.for_, got, tc.want)
			}
		})
	}
}

func TestUnreachableStrategyValidation(t *testing.T) {
	s := newGroupServer(t)
	for _, tc := range []struct {
		strategy string
		code     int
		path     string
	}{
		{`{"inactiveAfterSeconds": -1}`, 422, "/unreachableStrategy/inactiveAfterSeconds"},
		{`{"expungeAfterSeconds": -5}`, 422, "/unreachableStrategy/expungeAfterSeconds"},
		{`{"inactiveAfterSeconds": 60, "expungeAfterSeconds": 30}`, 422, "/unreachableStrategy/expungeAfterSeconds"},
		{`{"inactiveAfterSeconds": 700}`, 422, "/unreachableStrategy/expungeAfterSeconds"}, // over the default 600
		{`"sometimes"`, 422, "/unreachableStrategy"},
		{`42`, 422, "/unreachableStrategy"},
		{`"disabled"`, 201, ""},
		{`{"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}`, 201, ""},
		{`{}`, 201, ""},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			id := fmt.Sprintf("/u%d", time.Now().UnixNano())
			var e marathon.Error
			code := s.do("POST", "/v2/apps", `{"id":"`+id+`","cmd":"x","unreachableStrategy":`+tc.strategy+`}`, &e)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %+v", code, tc.code, e)
			}
			if tc.path != "" && (len(e.Details) != 1 || e.Details[0].Path != tc.path) {
				t.Fatalf("details %+v, want path %s", e.Details, tc.path)
			}
		})
	}
	// killSelection is checked too.
	var e marathon.Error
	if code := s.do("POST", "/v2/apps", `{"id":"/ks","cmd":"x","killSelection":"RANDOM"}`, &e); code != 422 || e.Details[0].Path != "/killSelection" {
		t.Fatalf("killSelection: %d %+v", code, e)
	}
}

func TestUnreachableStrategyDefaultsAndForms(t *testing.T) {
	s := newGroupServer(t)
	s.do("POST", "/v2/apps", `{"id":"/d","cmd":"x"}`, nil)
	s.do("POST", "/v2/apps", `{"id":"/off","cmd":"x","unreachableStrategy":"disabled"}`, nil)
	var d, off marathon.AppResponse
	s.do("GET", "/v2/apps/d", "", &d)
	s.do("GET", "/v2/apps/off", "", &off)
	if us := d.App.UnreachableStrategy; us == nil || *us.InactiveAfterSeconds != 300 || *us.ExpungeAfterSeconds != 600 {
		t.Fatalf("default strategy: %+v", us)
	}
	if us := off.App.UnreachableStrategy; us == nil || !us.Disabled {
		t.Fatalf("disabled strategy: %+v", us)
	}
	// A PUT replaces it.
	s.do("PUT", "/v2/apps/off", `{"unreachableStrategy":{"inactiveAfterSeconds":5,"expungeAfterSeconds":10}}`, nil)
	s.do("GET", "/v2/apps/off", "", &off)
	if us := off.App.UnreachableStrategy; us == nil || us.Disabled || *us.InactiveAfterSeconds != 5 {
		t.Fatalf("after PUT: %+v", us)
	}
}

// TestUnreachableReplacement drives one instance through a partition: it
// counts until inactiveAfterSeconds, is then replaced, and when it comes
// back the surplus is killed by killSelection; past expungeAfterSeconds
// it is forgotten and killed if it reports again.
func TestUnreachableReplacement(t *testing.T) {
	ctx := context.Background()
	status := func(f *Framework, id string, st mesos.TaskState) {
		f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id},
			State: st, AgentID: mesos.NewID("A1")}}})
	}
	launched := func(s *groupServer, offerID string) []string {
		s.f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer(offerID)}}})
		var ids []string
		for _, c := range s.m.take() {
			if c.Type == mesos.CallAccept {
				for _, ti := range c.Accept.Operations[0].Launch.TaskInfos {
					ids = append(ids, ti.TaskID.Value)
				}
			}
		}
		return ids
	}
	kills := func(s *groupServer) []string {
		var ids []string
		for _, c := range s.m.take() {
			if c.Type == mesos.CallKill {
				ids = append(ids, c.Kill.TaskID.Value)
			}
		}
		return ids
	}
	for _, tc := range []struct {
		name, strategy, killSelection string
		// replaceAfter is when a replacement is launched (0: never).
		replaceAfter time.Duration
		// backKills names which task is killed when the first comes back.
		backKills string // "replacement" or "returned"
	}{
		{"youngest first", `{"inactiveAfterSeconds":60,"expungeAfterSeconds":120}`, "YOUNGEST_FIRST", 60 * time.Second, "replacement"},
		{"oldest first", `{"inactiveAfterSeconds":60,"expungeAfterSeconds":120}`, "OLDEST_FIRST", 60 * time.Second, "returned"},
		{"inactive at once", `{"inactiveAfterSeconds":0,"expungeAfterSeconds":120}`, "YOUNGEST_FIRST", time.Nanosecond, "replacement"},
		{"default waits 300s", `null`, "YOUNGEST_FIRST", 300 * time.Second, "replacement"},
		{"disabled", `"disabled"`, "YOUNGEST_FIRST", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			s := newClockServer(t, clk)
			f := s.f
			f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
			body := `{"id":"/p","cmd":"x","instances":1,"cpus":0.1,"mem":16,"killSelection":"` + tc.killSelection + `","unreachableStrategy":` + tc.strategy + `}`
			if code := s.do("POST", "/v2/apps", body, nil); code != 201 {
				t.Fatalf("create: %d", code)
			}
			s.m.take()
			first := launched(s, "o1")
			if len(first) != 1 {
				t.Fatalf("first launch: %v", first)
			}
			status(f, first[0], mesos.TaskRunning)
			status(f, first[0], mesos.TaskUnreachable)
			s.m.take()
			if tc.replaceAfter != time.Nanosecond {
				// Still counted: nothing is launched.
				clk.Advance(tc.replaceAfter - time.Second)
				if tc.replaceAfter == 0 {
					clk.Advance(1000 * time.Hour)
				}
				f.sweepUnreachable(ctx)
				if got := launched(s, "o2"); len(got) != 0 {
					t.Fatalf("replaced before inactiveAfterSeconds: %v", got)
				}
				if tc.replaceAfter == 0 {
					return
				}
				clk.Advance(time.Second)
				f.sweepUnreachable(ctx)
			}
			second := launched(s, "o3")
			if len(second) != 1 {
				t.Fatalf("no replacement after inactiveAfterSeconds: %v", second)
			}
			status(f, second[0], mesos.TaskRunning)
			if got := kills(s); len(got) != 0 {
				t.Fatalf("killed %v while the first is away", got)
			}
			// The first comes back: one of the two goes, by killSelection.
			status(f, first[0], mesos.TaskRunning)
			want := second[0]
			if tc.backKills == "returned" {
				want = first[0]
			}
			if got := kills(s); strings.Join(got, ",") != want {
				t.Fatalf("killed %v, want %s (%s)", got, want, tc.backKills)
			}
		})
	}

	t.Run("expunged and killed when it comes back", func(t *testing.T) {
		clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		s := newClockServer(t, clk)
		f := s.f
		f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
		s.do("POST", "/v2/apps", `{"id":"/p","cmd":"x","cpus":0.1,"mem":16,"unreachableStrategy":{"inactiveAfterSeconds":10,"expungeAfterSeconds":20}}`, nil)
		s.m.take()
		first := launched(s, "o1")
		status(f, first[0], mesos.TaskRunning)
		status(f, first[0], mesos.TaskUnreachable)
		clk.Advance(20 * time.Second)
		f.sweepUnreachable(ctx)
		var tasks marathon.TasksResponse
		s.do("GET", "/v2/apps/p/tasks", "", &tasks)
		if len(tasks.Tasks) != 0 {
			t.Fatalf("expunged task still listed: %+v", tasks.Tasks)
		}
		if recs, _ := f.cfg.Store.List(ctx, keyTasks); len(recs) != 0 {
			t.Fatalf("expunged task's record kept: %v", recs)
		}
		second := launched(s, "o2")
		if len(second) != 1 {
			t.Fatalf("no replacement: %v", second)
		}
		status(f, second[0], mesos.TaskRunning)
		s.m.take()
		status(f, first[0], mesos.TaskRunning)
		if got := kills(s); strings.Join(got, ",") != first[0] {
			t.Fatalf("killed %v, want the expunged %s", got, first[0])
		}
		s.do("GET", "/v2/apps/p/tasks", "", &tasks)
		if len(tasks.Tasks) != 1 || tasks.Tasks[0].ID != second[0] {
			t.Fatalf("the expunged task was adopted again: %+v", tasks.Tasks)
		}
	})
}

// TestScaleDownPrefersUnreachable: scaling down kills an unreachable
// (still counted) instance before running ones, whatever killSelection.
func TestScaleDownPrefersUnreachable(t *testing.T) {
	ctx := context.Background()
	for _, sel := range []string{"YOUNGEST_FIRST", "OLDEST_FIRST"} {
		t.Run(sel, func(t *testing.T) {
			clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			s := newClockServer(t, clk)
			f := s.f
			f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
			s.do("POST", "/v2/apps", `{"id":"/s","cmd":"x","instances":3,"cpus":0.1,"mem":16,"killSelection":"`+sel+`"}`, nil)
			s.m.take()
			f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o1")}}})
			var ids []string
			for _, c := range s.m.take() {
				if c.Type == mesos.CallAccept {
					for _, ti := range c.Accept.Operations[0].Launch.TaskInfos {
						ids = append(ids, ti.TaskID.Value)
					}
				}
			}
			if len(ids) != 3 {
				t.Fatalf("launched %v", ids)
			}
			for _, id := range ids {
				f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id},
					State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
			}
			f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: ids[1]},
				State: mesos.TaskUnreachable, AgentID: mesos.NewID("A1")}}})
			s.m.take()
			s.do("PUT", "/v2/apps/s", `{"instances":2}`, nil)
			var killed []string
			for _, c := range s.m.take() {
				if c.Type == mesos.CallKill {
					killed = append(killed, c.Kill.TaskID.Value)
				}
			}
			if strings.Join(killed, ",") != ids[1] {
				t.Fatalf("killed %v, want the unreachable %s", killed, ids[1])
			}
		})
	}
}

// TestUnreachableClockSurvivesRestart: a framework started anew on the
// same store (a restart, a failover) goes on timing an unreachable task
// from when it was first reported, not from its own start.
func TestUnreachableClockSurvivesRestart(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := &memStore{m: map[string][]byte{}}
	start := func() (*Framework, *fakeMaster) {
		m := &fakeMaster{}
		f, err := New(ctx, Config{Master: m, Store: store, Listen: "127.0.0.1:0", Clock: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
		m.take()
		return f, m
	}
	accepted := func(f *Framework, m *fakeMaster, id string) int {
		f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer(id)}}})
		n := 0
		for _, c := range m.take() {
			if c.Type == mesos.CallAccept {
				n += len(c.Accept.Operations[0].Launch.TaskInfos)
			}
		}
		return n
	}
	f, m := start()
	cmd := "x"
	if _, err := f.CreateApp(ctx, marathon.App{ID: "/r", Cmd: &cmd, UnreachableStrategy: &marathon.UnreachableStrategy{
		InactiveAfterSeconds: ptr[int64](60), ExpungeAfterSeconds: ptr[int64](600)}}); err != nil {
		t.Fatal(err)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o1")}}})
	var id string
	for _, c := range m.take() {
		if c.Type == mesos.CallAccept {
			id = c.Accept.Operations[0].Launch.TaskInfos[0].TaskID.Value
		}
	}
	for _, st := range []mesos.TaskState{mesos.TaskRunning, mesos.TaskUnreachable} {
		f.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id},
			State: st, AgentID: mesos.NewID("A1")}}})
	}
	clk.Advance(40 * time.Second)
	f2, m2 := start()
	f2.sweepUnreachable(ctx)
	if n := accepted(f2, m2, "o2"); n != 0 {
		t.Fatalf("replaced 40s after the partition: %d", n)
	}
	clk.Advance(20 * time.Second)
	f2.sweepUnreachable(ctx)
	if n := accepted(f2, m2, "o3"); n != 1 {
		t.Fatalf("not replaced 60s after the partition, across the restart: %d", n)
	}
	// Back: the record no longer says unreachable.
	f2.handle(ctx, mesos.Event{Type: mesos.EventUpdate, Update: &mesos.Update{Status: mesos.TaskStatus{TaskID: mesos.ID{Value: id},
		State: mesos.TaskRunning, AgentID: mesos.NewID("A1")}}})
	recs, _ := store.List(ctx, keyTasks+id)
	if strings.Contains(string(recs[keyTasks+id]), "unreachable_since") {
		t.Fatalf("record after the task came back: %s", recs[keyTasks+id])
	}
}
