package apps

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Front serves the Marathon API on every master of an HA set, as
// Marathon's non-leading instances do: the leader's framework answers
// directly; a standby proxies each request to the leader's Marathon API
// (method, body and streams such as /v2/events included), or answers 503
// while no leader is known. /ping is always answered locally.
type Front struct {
	// WaitLocal, when positive, holds a request that nobody can answer
	// yet for up to this long, waiting for Lead: for a standalone master,
	// whose own framework is the only one there will be.
	WaitLocal time.Duration

	cur    atomic.Pointer[http.Handler]
	leader func() (string, bool)
	proxy  *httputil.ReverseProxy
}

// NewFront returns a Front that asks leader for the base URL
// ("http://10.0.0.1:8080") of the leading Marathon API.
func NewFront(leader func() (string, bool)) *Front {
	f := &Front{leader: leader}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			base, _ := url.Parse(r.In.Header.Get(frontTargetHeader))
			r.Out.Header.Del(frontTargetHeader)
			r.Out.Header.Set(frontHopHeader, "1")
			r.SetURL(base)
			r.SetXForwarded()
		},
		// Server-sent events must not wait for a buffer to fill.
		FlushInterval: -1,
		Transport: &http.Transport{
			Proxy:                 nil,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "the leading Marathon API did not answer: " + err.Error()})
		},
	}
	return f
}

// frontTargetHeader carries the chosen leader from ServeHTTP to Rewrite
// (stripped before the request leaves).
const frontTargetHeader = "X-Keel-Front-Target"

// frontHopHeader marks a request one front proxied to another, so a
// request is proxied at most once (no loop while leadership moves).
const frontHopHeader = "X-Keel-Front-Hop"

// Lead makes h (the leading framework's Handler) answer every request;
// Lead(nil) stands by.
func (f *Front) Lead(h http.Handler) {
	if h == nil {
		f.cur.Store(nil)
		return
	}
	f.cur.Store(&h)
}

// ServeHTTP implements http.Handler.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ping" {
		io.WriteString(w, "pong\n")
		return
	}
	if h := f.cur.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	if f.WaitLocal > 0 {
		// A standalone master's framework is starting: hold the request
		// briefly rather than answer 503.
		for deadline := time.Now().Add(f.WaitLocal); time.Now().Before(deadline); {
			if h := f.cur.Load(); h != nil {
				(*h).ServeHTTP(w, r)
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	base, ok := f.leader()
	if ok && r.Header.Get(frontHopHeader) != "" {
		// Another master's front sent this here, but this master does not
		// lead (yet, or any more): answering beats bouncing it back.
		ok = false
	}
	if !ok {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "Could not determine the current leader"})
		return
	}
	r.Header.Set(frontTargetHeader, base)
	f.proxy.ServeHTTP(w, r)
}

// RunBehind runs the framework like Run, but serves its API through
// front instead of binding cfg.Listen (which stays the advertised
// address): front answers with this framework until ctx ends, and every
// request it serves, streams included, ends with ctx too. This is how a
// master runs the apps framework only while it leads.
func (f *Framework) RunBehind(ctx context.Context, front *Front) error {
	h := f.Handler()
	front.Lead(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		h.ServeHTTP(w, r.WithContext(rctx))
	}))
	defer front.Lead(nil)
	f.log.Info("Marathon API served by this master while it leads", "addr", f.cfg.Listen)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		f.tickLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		f.readinessLoop(ctx)
	}()
	f.subscribeLoop(ctx)
	wg.Wait()
	return nil
}
