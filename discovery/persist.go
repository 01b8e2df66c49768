package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// The last state is saved as the operator SUBSCRIBED event that would
// recreate it, so loading it is the same code path as a resync.

// state renders the model as a SUBSCRIBED event. Caller holds Discovery.mu.
func (m *model) state() mesos.OpSubscribed {
	var st mesos.OpSubscribed
	st.MasterInfo = m.master
	for _, a := range m.agents {
		st.GetState.GetAgents.Agents = append(st.GetState.GetAgents.Agents, a)
	}
	for _, f := range m.frameworks {
		st.GetState.GetFrameworks.Frameworks = append(st.GetState.GetFrameworks.Frameworks, mesos.FrameworkState{FrameworkInfo: f})
	}
	for _, ts := range m.tasks {
		t := ts.task
		last := mesos.TaskStatus{TaskID: t.TaskID, State: t.State, Healthy: ts.healthy}
		if !ts.started.IsZero() {
			// Replaying a RUNNING status first restores the start time.
			t.Statuses = []mesos.TaskStatus{{TaskID: t.TaskID, State: mesos.TaskRunning, Timestamp: float64(ts.started.UnixNano()) / 1e9}}
		} else {
			t.Statuses = nil
		}
		if len(ts.ips) > 0 {
			ni := mesos.NetworkInfo{}
			for _, ip := range ts.ips {
				ni.IPAddresses = append(ni.IPAddresses, mesos.IPAddress{IPAddress: ip})
			}
			last.ContainerStatus = &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{ni}}
		}
		t.Statuses = append(t.Statuses, last)
		st.GetState.GetTasks.Tasks = append(st.GetState.GetTasks.Tasks, t)
	}
	return st
}

// save writes the model to path atomically (temp file, fsync, rename).
func (d *Discovery) save(path string) error {
	d.mu.Lock()
	st := d.model.state()
	d.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("discovery: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return fmt.Errorf("discovery: save state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("discovery: save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("discovery: save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("discovery: save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("discovery: save state: %w", err)
	}
	return nil
}

// load reads a saved state into the model; a missing file is not an error.
func (d *Discovery) load(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discovery: load state: %w", err)
	}
	var st mesos.OpSubscribed
	if err := json.Unmarshal(b, &st); err != nil {
		return false, fmt.Errorf("discovery: load state %s: %w", path, err)
	}
	d.mu.Lock()
	d.model.apply(mesos.OperatorEvent{Type: mesos.OpEventSubscribed, Subscribed: &st})
	d.mu.Unlock()
	return true, nil
}

// persistLoop saves the state at most once per interval while it changes,
// and once more on the way out.
func (d *Discovery) persistLoop(ctx context.Context, path string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	saved := uint64(0)
	for {
		select {
		case <-ctx.Done():
			if d.Current().Generation != saved {
				if err := d.save(path); err != nil {
					d.log.Warn("could not save last state", "err", err)
				}
			}
			return
		case <-t.C:
		}
		if g := d.Current().Generation; g != saved {
			if err := d.save(path); err != nil {
				d.log.Warn("could not save last state", "err", err)
				continue
			}
			saved = g
		}
	}
}
