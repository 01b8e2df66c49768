package coord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/internal/zktest"
)

// within is how long a test waits for something that should happen "within
// a few seconds".
const within = 10 * time.Second

func info(id string, port int) mesos.MasterInfo {
	return mesos.MasterInfo{
		ID: id, IP: mesos.IPv4ToUint32([]byte{127, 0, 0, 1}), Port: port, Hostname: "localhost",
		Version: "1.11.0", Address: &mesos.Address{Hostname: "localhost", IP: "127.0.0.1", Port: port},
	}
}

// candidate campaigns until the test ends and checks that it withdraws in
// bounded time.
func candidate(t *testing.T, cfg ElectionConfig) (*Election, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := Campaign(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-e.Done():
		case <-time.After(within):
			t.Errorf("election %s did not withdraw within %s", cfg.Info.ID, within)
		}
	})
	return e, cancel
}

// next returns the next event of e.
func next(t *testing.T, e *Election) Event {
	t.Helper()
	select {
	case ev, ok := <-e.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no election event within %s", within)
	}
	panic("unreachable")
}

// leads waits for e to lead and returns the term.
func leads(t *testing.T, e *Election) Term {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-e.Events():
			if !ok {
				t.Fatal("events closed")
			}
			if ev.Leader && ev.Term.Leading() {
				return ev.Term
			}
		case <-deadline:
			t.Fatalf("not leading within %s", within)
		}
	}
}

// ended waits for term's context to end and returns the cause.
func ended(t *testing.T, term Term, limit time.Duration) error {
	t.Helper()
	select {
	case <-term.Context().Done():
		return context.Cause(term.Context())
	case <-time.After(limit):
		t.Fatalf("term %d still on after %s", term.N, limit)
	}
	return nil
}

// client is a plain ZooKeeper session of the test itself.
func client(t *testing.T, servers []string) *zk.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	conn, _, err := dial(ctx, servers, 10*time.Second, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

var nodeName = regexp.MustCompile(`^json\.info_\d{10}$`)

// TestZK runs everything that needs one standalone server against one.
func TestZK(t *testing.T) {
	leakcheck.Check(t)
	zks := zktest.Start(t)
	servers := zks.Servers()
	base := func(t *testing.T) string {
		return "zk://" + zks.ConnectString() + "/keel/" + strings.ReplaceAll(t.Name(), "/", "_")
	}
	zc := client(t, servers)

	t.Run("two candidates: lowest leads, withdrawal hands over", func(t *testing.T) {
		url := base(t)
		_, path, _ := ParseZK(url)
		reg := prometheus.NewPedanticRegistry()
		a, cancelA := candidate(t, ElectionConfig{ZK: url, Info: info("master-a", 5050), Registerer: reg})
		ta := leads(t, a)
		b, _ := candidate(t, ElectionConfig{ZK: url, Info: info("master-b", 5051)})
		if ev := next(t, b); ev.Leader {
			t.Fatal("second candidate leads while the first does")
		}
		if ta.N != 1 || !ta.Leading() {
			t.Fatalf("term %+v", ta)
		}
		children, _, err := zc.Children(path)
		if err != nil {
			t.Fatal(err)
		}
		cs := Contenders(children)
		if len(cs) != 2 || path+"/"+cs[0] != ta.Node {
			t.Fatalf("contenders %v, leader node %s", cs, ta.Node)
		}
		for i, c := range cs {
			if !nodeName.MatchString(c) {
				t.Errorf("node name %q", c)
			}
			data, _, err := zc.Get(path + "/" + c)
			if err != nil {
				t.Fatal(err)
			}
			var mi mesos.MasterInfo
			if err := json.Unmarshal(data, &mi); err != nil {
				t.Fatalf("node %s: %v: %s", c, err, data)
			}
			if want := []string{"master-a", "master-b"}[i]; mi.ID != want || mi.Port == 0 || mi.IP == 0 || mi.Address == nil {
				t.Errorf("node %s holds %s, want a full MasterInfo of %s", c, data, want)
			}
		}
		checkMetrics(t, reg, map[string]float64{"keel_coord_leader": 1, "keel_coord_elections_total": 1})

		start := time.Now()
		cancelA()
		if cause := ended(t, ta, within); !errors.Is(cause, errWithdrawn) {
			t.Errorf("cause %v", cause)
		}
		tb := leads(t, b)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("hand-over took %s", d)
		}
		<-a.Done()
		if ok, _, _ := zc.Exists(ta.Node); ok {
			t.Error("withdrawn leader's node still exists")
		}
		if _, ok := <-a.Events(); ok {
			// drain: a's queue may still hold its last event
			for range a.Events() {
			}
		}
		if !tb.Leading() || tb.N != 1 {
			t.Fatalf("b term %+v", tb)
		}
	})

	t.Run("quorum", func(t *testing.T) {
		url := base(t)
		a, _ := candidate(t, ElectionConfig{ZK: url, Info: info("a", 1), Quorum: 2})
		if ev := next(t, a); ev.Leader {
			t.Fatal("lone candidate leads with quorum 2")
		}
		b, cancelB := candidate(t, ElectionConfig{ZK: url, Info: info("b", 2), Quorum: 2})
		ta := leads(t, a)
		if ev := next(t, b); ev.Leader {
			t.Fatal("both lead")
		}
		cancelB()
		if cause := ended(t, ta, within); !errors.Is(cause, errQuorumLost) {
			t.Errorf("cause %v, want quorum lost", cause)
		}
		if ev := next(t, a); ev.Leader || ev.Term.N != ta.N {
			t.Errorf("event after quorum loss %+v", ev)
		}
	})

	t.Run("fencing", func(t *testing.T) {
		url := base(t)
		e, _ := candidate(t, ElectionConfig{ZK: url, Info: info("a", 1)})
		term := leads(t, e)
		ctx := t.Context()
		s, err := NewZKStore(ctx, term)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "framework/id", []byte("f1")); err != nil {
			t.Fatal(err)
		}
		if err := zc.Delete(term.Node, -1); err != nil { // another client deposes us
			t.Fatal(err)
		}
		big := make([]byte, chunkSize*2+10)
		for _, tc := range []struct {
			key   string
			value []byte
		}{{"framework/id", []byte("f2")}, {"new", []byte("x")}, {"big", big}} {
			if err := s.Put(ctx, tc.key, tc.value); !errors.Is(err, ErrNotLeader) {
				t.Errorf("Put(%s) after deposition: %v, want ErrNotLeader", tc.key, err)
			}
		}
		if err := s.Delete(ctx, "framework/id"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Delete after deposition: %v", err)
		}
		// Nothing was written: a fresh term's store sees the old value only,
		// and no chunk exists.
		t2 := leads(t, e)
		if t2.N != 2 {
			t.Fatalf("re-campaign term %d", t2.N)
		}
		if ended(t, term, time.Second) == nil {
			t.Fatal("old term not over")
		}
		s2, err := NewZKStore(ctx, t2)
		if err != nil {
			t.Fatal(err)
		}
		all, err := s2.List(ctx, "")
		if err != nil || len(all) != 1 || string(all["framework/id"]) != "f1" {
			t.Fatalf("state after fenced writes: %q %v", all, err)
		}
		if n := countChunks(t, zc, s2); n != 0 {
			t.Fatalf("%d chunks written by a deposed leader", n)
		}
		if _, _, err := s.Get(ctx, "framework/id"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("old store Get: %v", err)
		}
		s2.Close()
		if err := s2.Put(ctx, "x", nil); !errors.Is(err, ErrClosed) {
			t.Errorf("Put after Close: %v", err)
		}
	})

	t.Run("store", func(t *testing.T) {
		url := base(t)
		e, _ := candidate(t, ElectionConfig{ZK: url, Info: info("a", 1)})
		ctx := t.Context()
		s, err := NewZKStore(ctx, leads(t, e))
		if err != nil {
			t.Fatal(err)
		}
		big := make([]byte, 5<<19) // 2.5 MiB
		rand.Read(big)
		kv := map[string][]byte{
			"apps//prod/web":   big,
			"apps//prod/db":    []byte("db"),
			"apps//dev/x~1~0":  {},
			"master/agents/A1": []byte("agent"),
			"100%/ünï":         []byte("odd"),
		}
		for k, v := range kv {
			if err := s.Put(ctx, k, v); err != nil {
				t.Fatalf("Put %s: %v", k, err)
			}
		}
		got, ok, err := s.Get(ctx, "apps//prod/web")
		if err != nil || !ok || !bytes.Equal(got, big) {
			t.Fatalf("2.5 MiB round trip: %d bytes, %v %v", len(got), ok, err)
		}
		if n := countChunks(t, zc, s); n != 5 {
			t.Errorf("%d chunks for 2.5 MiB, want 5", n)
		}
		apps, err := s.List(ctx, "apps//")
		if err != nil || len(apps) != 3 || !bytes.Equal(apps["apps//prod/web"], big) || string(apps["apps//prod/db"]) != "db" {
			t.Fatalf("List apps//: %d keys %v", len(apps), err)
		}
		if v, ok := apps["apps//dev/x~1~0"]; !ok || len(v) != 0 {
			t.Errorf("empty value %q %v", v, ok)
		}
		if l, err := s.List(ctx, "100%/"); err != nil || string(l["100%/ünï"]) != "odd" {
			t.Errorf("List 100%%/: %q %v", l, err)
		}
		// Replacing a chunked value with another drops the old chunks.
		big2 := bytes.Repeat([]byte("z"), chunkSize+1)
		if err := s.Put(ctx, "apps//prod/web", big2); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.Get(ctx, "apps//prod/web"); !bytes.Equal(got, big2) {
			t.Fatal("overwrite")
		}
		if n := countChunks(t, zc, s); n != 2 {
			t.Errorf("%d chunks after overwrite, want 2", n)
		}
		if err := s.Delete(ctx, "apps//prod/web"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "missing"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Get(ctx, "apps//prod/web"); ok || err != nil {
			t.Fatalf("deleted key: %v %v", ok, err)
		}
		if n := countChunks(t, zc, s); n != 0 {
			t.Errorf("%d chunks left after Delete", n)
		}
		if l, _ := s.List(ctx, "apps//"); len(l) != 2 {
			t.Errorf("List after delete: %d keys", len(l))
		}
		if l, _ := s.List(ctx, ""); len(l) != 4 {
			t.Errorf("List all: %d keys", len(l))
		}
	})

	t.Run("detector follows the leader", func(t *testing.T) {
		url := base(t)
		d, err := NewDetector(url, discard())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		a, cancelA := candidate(t, ElectionConfig{ZK: url, Info: info("a", 5050)})
		leads(t, a)
		wctx, wcancel := context.WithTimeout(ctx, within)
		defer wcancel()
		if u, err := d.LeaderURL(wctx); err != nil || u != "http://127.0.0.1:5050" {
			t.Fatalf("LeaderURL %q %v", u, err)
		}
		b, _ := candidate(t, ElectionConfig{ZK: url, Info: info("b", 5051)})
		next(t, b)
		cancelA()
		waitLeader(t, d, "b")
		if u, _ := d.LeaderURL(wctx); u != "http://127.0.0.1:5051" {
			t.Fatalf("LeaderURL after change %q", u)
		}
	})

	t.Run("frozen process steps down", func(t *testing.T) {
		var skew atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		e, _ := candidate(t, ElectionConfig{ZK: base(t), Info: info("a", 1), SessionTimeout: 2 * time.Second, now: now})
		term := leads(t, e)
		skew.Store(int64(5 * time.Second)) // as if resumed after a 5 s SIGSTOP
		if term.Leading() {
			t.Error("Leading() still true right after the clock jump")
		}
		if cause := ended(t, term, within); cause == nil || !strings.Contains(cause.Error(), "did not run") {
			t.Errorf("cause %v", cause)
		}
		if t2 := leads(t, e); t2.N != 2 {
			t.Errorf("term after freeze %d", t2.N)
		}
	})

	t.Run("a pause shorter than the session timeout can still end the term", func(t *testing.T) {
		// The session may expire two thirds of its timeout after the last
		// ping, which came up to a third before the pause.
		var skew atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		e, _ := candidate(t, ElectionConfig{ZK: base(t), Info: info("a", 1), SessionTimeout: 2 * time.Second, now: now, tick: time.Hour})
		term := leads(t, e)
		skew.Store(int64(500 * time.Millisecond))
		if !term.Leading() {
			t.Error("not Leading() after a quarter of the session timeout")
		}
		skew.Store(int64(1300 * time.Millisecond))
		if term.Leading() {
			t.Error("Leading() after two thirds of the session timeout")
		}
	})

	t.Run("resumed leader refuses writes before the watchdog runs", func(t *testing.T) {
		var skew atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		e, _ := candidate(t, ElectionConfig{ZK: base(t), Info: info("a", 1), SessionTimeout: 2 * time.Second, now: now, tick: time.Hour})
		term := leads(t, e)
		s, err := NewZKStore(t.Context(), term)
		if err != nil {
			t.Fatal(err)
		}
		skew.Store(int64(3 * time.Second))
		if err := s.Put(t.Context(), "k", []byte("v")); !errors.Is(err, ErrNotLeader) {
			t.Errorf("Put after freeze: %v", err)
		}
		if term.Leading() {
			t.Error("Leading() after freeze")
		}
	})
}

// waitLeader waits until d reports the master with id.
func waitLeader(t *testing.T, d *Detector, id string) {
	t.Helper()
	deadline := time.After(within)
	for {
		ch := d.Changed()
		if l, ok := d.Leader(); ok && l.ID == id {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			l, ok := d.Leader()
			t.Fatalf("detector: leader %q (%v), want %q", l.ID, ok, id)
		}
	}
}

func countChunks(t *testing.T, zc *zk.Conn, s *ZKStore) int {
	t.Helper()
	n := 0
	for b := range buckets {
		c, _, err := zc.Children(fmt.Sprintf("%s/b%02d", s.chunks, b))
		if err != nil {
			t.Fatal(err)
		}
		n += len(c)
	}
	return n
}

func TestSessionLoss(t *testing.T) {
	leakcheck.Check(t)
	zks := zktest.Start(t)
	url := "zk://" + zks.ConnectString() + "/keel"
	const timeout = 2 * time.Second
	e, _ := candidate(t, ElectionConfig{ZK: url, Info: info("a", 1), SessionTimeout: timeout})
	term := leads(t, e)
	s, err := NewZKStore(t.Context(), term)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	zks.Kill(0)
	cause := ended(t, term, 4*timeout)
	if !errors.Is(cause, errDisconnected) && !errors.Is(cause, errSessionExpired) {
		t.Errorf("cause %v", cause)
	}
	if d := time.Since(start); d < timeout/2 {
		t.Errorf("term ended after %s, before the session timeout could pass", d)
	}
	if err := s.Put(t.Context(), "k", nil); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Put after the term: %v", err)
	}
	// Back up: the master campaigns again (deleting the node its old
	// session may still hold) and leads a new term.
	zks.StartServer(0)
	t2 := leads(t, e)
	if t2.N != 2 || t2.Node == term.Node {
		t.Fatalf("new term %+v", t2)
	}
	zc := client(t, zks.Servers())
	children, _, err := zc.Children("/keel")
	if err != nil {
		t.Fatal(err)
	}
	if cs := Contenders(children); len(cs) != 1 {
		t.Fatalf("contenders after re-campaign %v (stale node left?)", cs)
	}
}

func TestEnsembleServerLoss(t *testing.T) {
	leakcheck.Check(t)
	zks := zktest.StartEnsemble(t, 3)
	const timeout = 3 * time.Second
	e, _ := candidate(t, ElectionConfig{ZK: "zk://" + zks.ConnectString() + "/keel", Info: info("a", 1), SessionTimeout: timeout})
	term := leads(t, e)
	s, err := NewZKStore(t.Context(), term)
	if err != nil {
		t.Fatal(err)
	}
	i := zks.Index(term.conn.Server())
	if i < 0 {
		t.Fatalf("connected to unknown server %q", term.conn.Server())
	}
	zks.Stop(i)
	// The session moves to another server well within its timeout:
	// writes work again and the term never ends.
	deadline := time.Now().Add(within)
	for {
		err := s.Put(t.Context(), "k", []byte("v"))
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("Put after losing one server: %v", err)
		}
	}
	select {
	case <-term.Context().Done():
		t.Fatalf("term ended: %v", context.Cause(term.Context()))
	case <-time.After(2 * timeout):
	}
	if !term.Leading() {
		t.Fatal("not leading")
	}
	if v, ok, err := s.Get(t.Context(), "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get %q %v %v", v, ok, err)
	}
}

var metricName = regexp.MustCompile(`^keel_coord_[a-z]+(_[a-z]+)*$`)

// checkMetrics lints the names in reg and compares their values with want.
func checkMetrics(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !metricName.MatchString(name) || mf.GetHelp() == "" {
			t.Errorf("metric %q (help %q) breaks keel_<component>_<what>_<unit>", name, mf.GetHelp())
		}
		if strings.HasSuffix(name, "_total") != (mf.GetType().String() == "COUNTER") {
			t.Errorf("metric %q: type %s", name, mf.GetType())
		}
		for _, m := range mf.GetMetric() {
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}
