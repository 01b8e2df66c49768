package agentd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// updateManager holds every status update until the master relays its
// acknowledgement: one FIFO per task, only the head in flight, in order.
// It is plain data plus a lock, so persisting its queues later (agent
// checkpointing) touches nothing else.
type updateManager struct {
	path    string // where the queues are saved ("" = nowhere)
	retry   time.Duration
	metrics *metrics
	wake    chan struct{}

	mu     sync.Mutex
	queues map[string][]pending // by task ID
	empty  chan struct{}        // closed and replaced when the last update is acked
}

type pending struct {
	fid    mesos.ID
	status mesos.TaskStatus
	sent   time.Time // zero: never sent (or must be sent again)
}

func newUpdateManager(retry time.Duration, m *metrics, path string) *updateManager {
	return &updateManager{path: path, retry: retry, metrics: m, wake: make(chan struct{}, 1), queues: map[string][]pending{}}
}

// savedUpdate is one queued update on disk.
type savedUpdate struct {
	FrameworkID mesos.ID         `json:"framework_id"`
	Status      mesos.TaskStatus `json:"status"`
}

// save writes every queue to disk. Caller holds mu. An update is on disk
// before it is first sent.
func (u *updateManager) save() {
	if u.path == "" {
		return
	}
	var all []savedUpdate
	for _, q := range u.queues {
		for _, p := range q {
			all = append(all, savedUpdate{FrameworkID: p.fid, Status: p.status})
		}
	}
	b, err := json.Marshal(all)
	if err == nil {
		err = writeFileAtomic(u.path, b)
	}
	if err != nil {
		slog.Error("agentd: could not save pending status updates", "err", err)
	}
}

// load reads the queues saved by a previous run.
func (u *updateManager) load() error {
	b, err := os.ReadFile(u.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var all []savedUpdate
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	// Order within a task is kept: all was written queue by queue.
	for _, s := range all {
		id := s.Status.TaskID.Value
		u.queues[id] = append(u.queues[id], pending{fid: s.FrameworkID, status: s.Status})
		u.metrics.pending.Inc()
	}
	return nil
}

func (u *updateManager) push(fid mesos.ID, st mesos.TaskStatus) {
	u.mu.Lock()
	id := st.TaskID.Value
	u.queues[id] = append(u.queues[id], pending{fid: fid, status: st})
	u.metrics.pending.Inc()
	u.save()
	u.mu.Unlock()
	u.poke()
}

func (u *updateManager) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// due returns the queue heads to send now and marks them sent.
func (u *updateManager) due(now time.Time) []pending {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []pending
	for id, q := range u.queues {
		if len(q) == 0 {
			continue
		}
		if h := &q[0]; h.sent.IsZero() || now.Sub(h.sent) >= u.retry {
			h.sent = now
			out = append(out, *h)
		}
		u.queues[id] = q
	}
	return out
}

// failed marks a task's head as not delivered, to be sent on the next round.
func (u *updateManager) failed(taskID string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if q := u.queues[taskID]; len(q) > 0 {
		q[0].sent = time.Now().Add(-u.retry + 200*time.Millisecond)
	}
}

// ack pops the head of the task's queue if it carries uuid.
func (u *updateManager) ack(taskID string, uuid []byte) {
	u.mu.Lock()
	q := u.queues[taskID]
	if len(q) == 0 || !bytes.Equal(q[0].status.UUID, uuid) {
		u.mu.Unlock()
		return
	}
	q = q[1:]
	u.metrics.pending.Dec()
	if len(q) == 0 {
		delete(u.queues, taskID)
	} else {
		u.queues[taskID] = q
	}
	u.save()
	if len(u.queues) == 0 && u.empty != nil {
		close(u.empty)
		u.empty = nil
	}
	u.mu.Unlock()
	u.poke()
}

// resendAll makes every head due now (after a reconnect).
func (u *updateManager) resendAll() {
	u.mu.Lock()
	for _, q := range u.queues {
		if len(q) > 0 {
			q[0].sent = time.Time{}
		}
	}
	u.mu.Unlock()
	u.poke()
}

// waitEmpty waits until every update is acknowledged or ctx is done.
func (u *updateManager) waitEmpty(ctx context.Context) {
	u.mu.Lock()
	if len(u.queues) == 0 {
		u.mu.Unlock()
		return
	}
	if u.empty == nil {
		u.empty = make(chan struct{})
	}
	ch := u.empty
	u.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// len returns the number of unacknowledged updates.
func (u *updateManager) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, q := range u.queues {
		n += len(q)
	}
	return n
}
