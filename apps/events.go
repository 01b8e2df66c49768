package apps

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Marathon's event bus, served as Server-Sent Events on /v2/events (what
// marathon-lb and other Marathon tools subscribe to). Every subscriber has
// a bounded queue; one that falls behind is cut off, never waited for.

const eventQueue = 1024

type eventBus struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
}

type eventSub struct {
	types map[string]bool // nil: all
	out   chan []byte
	gone  chan struct{}
	once  sync.Once
}

func (s *eventSub) close() { s.once.Do(func() { close(s.gone) }) }

// publish sends one event of typ (its JSON gets eventType and timestamp).
func (b *eventBus) publish(typ string, fields map[string]any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	fields["eventType"] = typ
	fields["timestamp"] = time.Now().UTC().Format(timeFormat)
	data, err := json.Marshal(fields)
	if err != nil {
		return
	}
	msg := []byte(fmt.Sprintf("event: %s\ndata: %s\n\n", typ, data))
	for s := range b.subs {
		if s.types != nil && !s.types[typ] {
			continue
		}
		select {
		case s.out <- msg:
		default:
			s.close()
			delete(b.subs, s)
		}
	}
}

func (b *eventBus) subscribe(types []string) *eventSub {
	s := &eventSub{out: make(chan []byte, eventQueue), gone: make(chan struct{})}
	if len(types) > 0 {
		s.types = map[string]bool{}
		for _, t := range types {
			s.types[t] = true
		}
	}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*eventSub]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *eventBus) unsubscribe(s *eventSub) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
	s.close()
}

// handleEvents streams events until the client goes away.
func (f *Framework) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sub := f.events.subscribe(r.URL.Query()["event_type"])
	defer f.events.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	attached, _ := json.Marshal(map[string]any{"eventType": "event_stream_attached", "remoteAddress": r.RemoteAddr,
		"timestamp": time.Now().UTC().Format(timeFormat)})
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("event: event_stream_attached\ndata: " + string(attached) + "\n\n")) {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.gone:
			return
		case msg := <-sub.out:
			if !write(msg) {
				return
			}
		case <-keepalive.C:
			if !write([]byte(":\n\n")) {
				return
			}
		}
	}
}
