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
type conn struct {
	id   string
	out  chan []byte
	done chan struct{}
	once sync.Once
}

func newConn(id string) *conn {
	return &conn{id: id, out: make(chan []byte, queueLen), done: make(chan struct{})}
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
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- recordio.Frame(b):
		return true
	default:
		c.close()
		return false
	}
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
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			// Drain what was queued before the close (e.g. a final ERROR).
			for {
				select {
				case b := <-c.out:
					if !write(b) {
						return
					}
				default:
					return
				}
			}
		case b := <-c.out:
			if !write(b) {
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
