package master_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/master"
)

// election is an in-memory election the test drives: grant makes one
// candidate leader, revoke ends its term.
type election struct {
	mu     sync.Mutex
	store  master.Store
	leader *mesos.MasterInfo
	cancel context.CancelFunc
	cands  map[string]chan struct{} // by master ID: closed to grant
	joined chan string
}

type candidate struct{ e *election }

func (c candidate) Campaign(ctx context.Context, info mesos.MasterInfo) (master.Term, error) {
	e := c.e
	e.mu.Lock()
	grant := make(chan struct{})
	e.cands[info.ID] = grant
	e.mu.Unlock()
	e.joined <- info.ID
	select {
	case <-grant:
	case <-ctx.Done():
		return master.Term{}, ctx.Err()
	}
	tctx, cancel := context.WithCancel(ctx)
	e.mu.Lock()
	e.leader, e.cancel = &info, cancel
	e.mu.Unlock()
	return master.Term{Ctx: tctx, Store: e.store}, nil
}

func (c candidate) Leader() (mesos.MasterInfo, bool) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if c.e.leader == nil {
		return mesos.MasterInfo{}, false
	}
	return *c.e.leader, true
}

func (e *election) grant(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.cands[id])
	delete(e.cands, id)
}

func (e *election) revoke() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cancel()
	e.leader = nil
}

func startHA(t *testing.T, e *election) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- master.Run(ctx, master.Config{Listen: "127.0.0.1:0", Elector: candidate{e}, AllocationInterval: 50 * time.Millisecond,
			HeartbeatInterval: time.Second, OnListen: func(a net.Addr) { addrc <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("master.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("master did not stop within 10s")
		}
	})
	return "http://" + (<-addrc).String()
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{Timeout: 5 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestHAStandbyRedirectsAndTakesOver(t *testing.T) {
	leakcheck.Check(t)
	// The registry both masters share: the real standalone store.
	store, err := coord.OpenBolt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() }) // after the masters stop (cleanups run last-in first-out)
	e := &election{store: store, cands: map[string]chan struct{}{}, joined: make(chan string, 4)}
	urlA := startHA(t, e)
	idA := <-e.joined
	urlB := startHA(t, e)
	idB := <-e.joined

	// Nobody leads: both answer 503 with a reason.
	resp, err := noRedirect.Post(urlA+"/api/v1", "application/json", strings.NewReader(`{"type":"GET_HEALTH"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no leader: status %d, want 503", resp.StatusCode)
	}

	e.grant(idA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waitHTTPStatus(t, urlA+"/master/state", 200)

	// B redirects API calls to A, keeping path and method.
	resp, err = noRedirect.Post(urlB+"/api/v1/scheduler", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || loc != urlA+"/api/v1/scheduler" {
		t.Fatalf("standby: %d Location %q, want 307 to %s", resp.StatusCode, loc, urlA)
	}

	// A framework subscribed through B (following the redirect) lands on A
	// and is persisted in the shared registry.
	s := subscribe(t, ctx, urlB)
	fid := s.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value

	// A loses leadership: its stream ends, B takes over with A's registry.
	e.revoke()
	e.grant(idB)
	waitHTTPStatus(t, urlB+"/master/state", 200)
	resp, err = noRedirect.Get(urlA + "/master/state")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, urlB) {
		t.Fatalf("deposed A: %d %q, want a redirect to %s", resp.StatusCode, loc, urlB)
	}
	s2 := subscribeInfo(t, ctx, urlA, mesos.FrameworkInfo{ID: mesos.NewID(fid), User: "root", Name: "test", FailoverTimeout: 60})
	if got := s2.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value; got != fid {
		t.Fatalf("re-subscribed as %s, want %s (recovered from the registry)", got, fid)
	}
}

func waitHTTPStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := noRedirect.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last: %v %v)", url, want, resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
