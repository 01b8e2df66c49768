package master

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/keelhq/keel/api/recordio"
)

// queueLen bounds each stream's outbound queue. A client that falls this
// far behind is cut off rather than allowed to hold memory or the lock.
// It is sized for bursts: launching 10 000 tasks sends a framework 10 000
// updates within seconds, and cutting it off then would only make it
// reconnect and receive them all again.
const queueLen = 1 << 16

// conn is one open streaming response (framework, agent or operator).
// Its queue grows with what is waiting, up to queueLen records: an idle
// stream holds nothing, however many streams the master serves.
type conn struct {
	id    string
	mu    sync.Mutex
	queue [][]byte      // framed records not yet written, oldest first
	ready chan struct{} // signalled when queue stops being empty
	done  chan struct{}
	once  sync.Once
}

func newConn(id string) *conn {
	return &conn{id: id, ready: make(chan struct{}, 1), done: make(chan struct{})}
}

// send queues one event; it never blocks. On overflow the connection is
// closed and false returned.
func (c *conn) send(v any) bool {
	if c == nil {
		return false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return c.sendRaw(b)
}

// sendRaw queues one already-encoded event.
func (c *conn) sendRaw(b []byte) bool {
	if c.closed() {
		return false
	}
	c.mu.Lock()
	if len(c.queue) >= queueLen {
		c.mu.Unlock()
		c.close()
		return false
	}
	c.queue = append(c.queue, recordio.Frame(b))
	first := len(c.queue) == 1
	c.mu.Unlock()
	if first {
		select {
		case c.ready <- struct{}{}:
		default: // already signalled
		}
	}
	return true
}

// take returns everything queued and empties the queue.
func (c *conn) take() [][]byte {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	return q
}

func (c *conn) close() {
	if c != nil {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// serve writes queued records to w until ctx ends, the connection is closed
// or a write fails. heartbeat, when non-nil, is sent every interval.
func (c *conn) serve(ctx context.Context, w http.ResponseWriter, heartbeat any, interval time.Duration) {
	defer c.close()
	rc := http.NewResponseController(w)
	var tick <-chan time.Time
	if heartbeat != nil && interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	// write sends records and flushes once.
	write := func(bs ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for _, b := range bs {
			if _, err := w.Write(b); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			// Write what was queued before the close (e.g. a final ERROR).
			if q := c.take(); len(q) > 0 {
				write(q...)
			}
			return
		case <-c.ready:
			if q := c.take(); len(q) > 0 && !write(q...) {
				return
			}
		case <-tick:
			hb, _ := json.Marshal(heartbeat)
			if !write(recordio.Frame(hb)) {
				return
			}
		}
	}
}
