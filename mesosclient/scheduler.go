package mesosclient

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Scheduler is a client of the v1 scheduler API for one framework. It is
// safe for concurrent use: Call may be made from Subscribe's handler.
type Scheduler struct {
	leader Resolver
	hc     *http.Client

	mu          sync.Mutex
	url         string // of the master holding the current stream
	streamID    string
	frameworkID string
}

// schedulerPath is the scheduler API's path on a master.
const schedulerPath = "/api/v1/scheduler"

// NewScheduler returns a client of the master at base ("http://host:5050").
func NewScheduler(base string) *Scheduler { return NewSchedulerFor(Static(base)) }

// NewSchedulerFor returns a client that subscribes to whichever master
// leader names at each (re)subscription; calls go to the master that
// holds the stream.
func NewSchedulerFor(leader Resolver) *Scheduler {
	return &Scheduler{leader: leader, hc: newHTTPClient()}
}

// ErrNotSubscribed is returned by Call before a subscription is up.
var ErrNotSubscribed = errors.New("mesosclient: not subscribed")

// Subscribe opens a SUBSCRIBE stream for info and hands every event to
// handle, in order, until ctx is done (it returns ctx.Err()) or the stream
// breaks (non-nil error). The stream is considered broken when no event
// arrives for three heartbeat intervals.
func (s *Scheduler) Subscribe(ctx context.Context, info mesos.FrameworkInfo, handle func(mesos.Event)) error {
	call := mesos.Call{Type: mesos.CallSubscribe, FrameworkID: info.ID, Subscribe: &mesos.Subscribe{FrameworkInfo: info}}
	base, err := s.leader(ctx)
	if err != nil {
		return err
	}
	resp, err := post(ctx, s.hc, strings.TrimRight(base, "/")+schedulerPath, call, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	// A standby redirects to the leader: later calls go straight there.
	s.url = resp.Request.URL.String()
	s.streamID = resp.Header.Get(mesos.StreamIDHeader)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.streamID = ""
		s.mu.Unlock()
	}()
	idle := 45 * time.Second
	err = Stream(ctx, resp.Body, idle, func(ev mesos.Event) {
		if ev.Type == mesos.EventSubscribed && ev.Subscribed != nil {
			s.mu.Lock()
			s.frameworkID = ev.Subscribed.FrameworkID.Value
			s.mu.Unlock()
		}
		handle(ev)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Call sends one call on the current subscription, filling in the
// framework ID when call.FrameworkID is nil.
func (s *Scheduler) Call(ctx context.Context, call mesos.Call) error {
	s.mu.Lock()
	url, sid, fid := s.url, s.streamID, s.frameworkID
	s.mu.Unlock()
	if sid == "" || fid == "" {
		return ErrNotSubscribed
	}
	if call.FrameworkID == nil {
		call.FrameworkID = mesos.NewID(fid)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := post(ctx, s.hc, url, call, http.Header{mesos.StreamIDHeader: {sid}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
