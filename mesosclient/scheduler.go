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
	url string
	hc  *http.Client

	mu          sync.Mutex
	streamID    string
	frameworkID string
}

// NewScheduler returns a client of the master at base ("http://host:5050").
func NewScheduler(base string) *Scheduler {
	return &Scheduler{url: strings.TrimRight(base, "/") + "/api/v1/scheduler", hc: newHTTPClient()}
}

// ErrNotSubscribed is returned by Call before a subscription is up.
var ErrNotSubscribed = errors.New("mesosclient: not subscribed")

// Subscribe opens a SUBSCRIBE stream for info and hands every event to
// handle, in order, until ctx is done (it returns ctx.Err()) or the stream
// breaks (non-nil error). The stream is considered broken when no event
// arrives for three heartbeat intervals.
func (s *Scheduler) Subscribe(ctx context.Context, info mesos.FrameworkInfo, handle func(mesos.Event)) error {
	call := mesos.Call{Type: mesos.CallSubscribe, FrameworkID: info.ID, Subscribe: &mesos.Subscribe{FrameworkInfo: info}}
	resp, err := post(ctx, s.hc, s.url, call, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
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
	sid, fid := s.streamID, s.frameworkID
	s.mu.Unlock()
	if sid == "" || fid == "" {
		return ErrNotSubscribed
	}
	if call.FrameworkID == nil {
		call.FrameworkID = mesos.NewID(fid)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := post(ctx, s.hc, s.url, call, http.Header{mesos.StreamIDHeader: {sid}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
