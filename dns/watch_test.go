package dns

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/snapshot"
)

// changed is the golden snapshot one generation on: hello.2 gone, a new
// task "new" on agent a-S2.
func changed() *snapshot.Snapshot {
	s := testSnapshot()
	s.Generation = 8
	var tasks []snapshot.Task
	for _, t := range s.Tasks {
		if t.ID != "hello.2" {
			tasks = append(tasks, t)
		}
	}
	s.Tasks = append(tasks, snapshot.Task{ID: "new.1", Name: "new", FrameworkName: "marathon", AgentID: "a-S2", AgentIP: "10.0.0.12", State: mesos.TaskRunning})
	return s
}

func recordStrings(rs []Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name+" "+r.Rtype+" "+r.Host)
	}
	return strings.Join(out, "\n")
}

func TestDiff(t *testing.T) {
	opts := BuildOptions{Domain: "mesos", TTL: 60, HealthyOnly: true}
	a, b := Build(testSnapshot(), opts), Build(changed(), opts)
	added, removed := Diff(a, b)
	wantAdded := strings.Join([]string{
		"mesos. SOA ns1.mesos. root.ns1.mesos. 8 60 600 86400 60",
		"new-q399x-s2.marathon.mesos. A 10.0.0.12",
		"new-q399x-s2.marathon.slave.mesos. A 10.0.0.12",
		"new.marathon.mesos. A 10.0.0.12",
		"new.marathon.slave.mesos. A 10.0.0.12",
	}, "\n")
	wantRemoved := strings.Join([]string{
		"_hello._tcp.marathon.mesos. SRV 0 0 31005 hello-5sxs1-s2.marathon.slave.mesos.",
		"_hello._tcp.marathon.slave.mesos. SRV 0 0 31005 hello-5sxs1-s2.marathon.slave.mesos.",
		"_http._hello._tcp.marathon.mesos. SRV 0 0 31005 hello-5sxs1-s2.marathon.slave.mesos.",
		"hello-5sxs1-s2.marathon.mesos. A 10.0.0.12",
		"hello-5sxs1-s2.marathon.slave.mesos. A 10.0.0.12",
		"hello.marathon.mesos. A 10.0.0.12",
		"hello.marathon.slave.mesos. A 10.0.0.12",
		"mesos. SOA ns1.mesos. root.ns1.mesos. 7 60 600 86400 60",
	}, "\n")
	if got := recordStrings(added); got != wantAdded {
		t.Errorf("added:\n%s\nwant:\n%s", got, wantAdded)
	}
	if got := recordStrings(removed); got != wantRemoved {
		t.Errorf("removed:\n%s\nwant:\n%s", got, wantRemoved)
	}
	if ad, rm := Diff(a, a); len(ad)+len(rm) != 0 {
		t.Errorf("a zone against itself: %v %v", ad, rm)
	}
	if ad, rm := Diff(nil, a); len(ad) != a.Len() || len(rm) != 0 {
		t.Errorf("from nothing: %d added (want %d), %d removed", len(ad), a.Len(), len(rm))
	}
}

// readEvent reads one SSE event's data line.
func readEvent(t *testing.T, r *bufio.Reader) ZoneEvent {
	t.Helper()
	var ev ZoneEvent
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("watch stream: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			return ev
		}
	}
}

func TestWatch(t *testing.T) {
	leakcheck.Check(t)
	s, err := New(Config{Addr: "127.0.0.1:0", HealthyOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Update(testSnapshot())
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+"/v1/watch", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	// First the whole zone.
	first := readEvent(t, r)
	if first.Generation != 7 || len(first.Added) != s.Zone().Len() || len(first.Removed) != 0 {
		t.Fatalf("first event: generation %d, %d added (want %d), %d removed", first.Generation, len(first.Added), s.Zone().Len(), len(first.Removed))
	}
	// Then one event per zone, with what changed.
	s.Update(changed())
	ev := readEvent(t, r)
	want, wantRm := Diff(Build(testSnapshot(), s.buildOptions()), Build(changed(), s.buildOptions()))
	if ev.Generation != 8 || recordStrings(ev.Added) != recordStrings(want) || recordStrings(ev.Removed) != recordStrings(wantRm) {
		t.Fatalf("second event: %+v", ev)
	}
	back := testSnapshot()
	back.Generation = 9
	s.Update(back)
	if ev := readEvent(t, r); ev.Generation != 9 || recordStrings(ev.Added) != strings.Replace(recordStrings(wantRm), " 7 60", " 9 60", 1) {
		t.Fatalf("third event: %+v", ev)
	}
	// The client goes away: the handler ends and unregisters.
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.watch.count() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("watcher still registered after the client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchSlowClient: a watcher that does not keep up is dropped, and
// publishing never blocks on it.
func TestWatchSlowClient(t *testing.T) {
	h := newWatchHub()
	z := Build(testSnapshot(), BuildOptions{Domain: "mesos"})
	slow, _ := h.add(func() *Records { return z })
	fast, _ := h.add(func() *Records { return z })
	dropped := 0
	for i := 0; i < watchQueue+1; i++ {
		dropped += h.publish(z)
		<-fast.zones // the fast watcher keeps up
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("slow watcher not dropped after its queue filled")
	}
	select {
	case <-fast.gone:
		t.Fatal("a watcher that keeps up was dropped")
	default:
	}
	if h.count() != 1 || dropped != 1 {
		t.Fatalf("%d watchers, %d dropped; want 1 and 1", h.count(), dropped)
	}
	h.remove(slow) // removing a dropped watcher is harmless
	h.remove(fast)
	if h.count() != 0 {
		t.Fatal("remove did not unregister")
	}
}

func TestWatchNoDiffWithoutWatchers(t *testing.T) {
	s, _ := New(Config{Addr: "127.0.0.1:0"})
	for i := 0; i < 3; i++ {
		snap := testSnapshot()
		snap.Generation = uint64(i)
		s.Update(snap)
		if s.Zone().cache.diff.data != nil {
			t.Fatalf("generation %d: a diff was computed with nobody watching", i)
		}
	}
}

// TestEventMemo: the memo serves watchers in step, never mixes up the
// whole-zone event with a step, and does not keep the previous zone alive.
func TestEventMemo(t *testing.T) {
	opts := BuildOptions{Domain: "mesos", TTL: 60, HealthyOnly: true}
	z1, z2 := Build(testSnapshot(), opts), Build(changed(), opts)
	step := z2.event(z1)
	if again := z2.event(z1); &again[0] != &step[0] {
		t.Fatal("the same step was encoded twice")
	}
	var full ZoneEvent
	if err := json.Unmarshal(z2.event(nil), &full); err != nil || len(full.Added) != z2.Len() {
		t.Fatalf("whole-zone event: %d added, %v", len(full.Added), err)
	}
	z2.event(z1)
	wp := weak.Make(z1)
	z1 = nil
	runtime.GC()
	if wp.Value() != nil {
		t.Fatal("a zone's memo keeps its predecessor alive")
	}
	// With the predecessor gone, asking for the whole zone still gets it.
	if err := json.Unmarshal(z2.event(nil), &full); err != nil || len(full.Added) != z2.Len() {
		t.Fatalf("whole-zone event after the predecessor died: %d added, %v", len(full.Added), err)
	}
}
