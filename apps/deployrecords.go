package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// keyDeployments prefixes the record of each app's deployment in progress,
// so a restarted or failed-over framework keeps its ID and what a cancel
// goes back to. The rolling upgrade itself needs no record: it continues
// from the versions of the tasks.
const keyDeployments = "deployments/"

// deploymentRecord is what keyDeployments+appID holds.
type deploymentRecord struct {
	ID      string        `json:"id"`
	Started time.Time     `json:"started"`
	Halted  bool          `json:"halted,omitempty"`
	Prev    *marathon.App `json:"prev,omitempty"`
}

// saveDeployments writes the deployment records that changed since the
// last call (tickLoop calls it every second), and removes those of
// deployments that ended.
func (f *Framework) saveDeployments(ctx context.Context) {
	f.mu.Lock()
	if f.savedDeployments == nil {
		f.savedDeployments = map[string]string{}
	}
	puts := map[string][]byte{}
	var dels []string
	for id, a := range f.apps {
		var cur string
		var b []byte
		if a.deployment != "" || a.halted {
			b, _ = json.Marshal(deploymentRecord{ID: a.deployment, Started: a.deployedAt, Halted: a.halted, Prev: a.prevDef})
			cur = string(b)
		}
		if f.savedDeployments[id] == cur {
			continue
		}
		if cur == "" {
			dels = append(dels, id)
		} else {
			puts[id] = b
		}
	}
	for id := range f.savedDeployments {
		if _, ok := f.apps[id]; !ok {
			dels = append(dels, id)
		}
	}
	f.mu.Unlock()
	for id, b := range puts {
		if err := f.cfg.Store.Put(ctx, keyDeployments+id, b); err != nil {
			f.log.Error("could not persist a deployment", "app", id, "err", err)
			continue
		}
		f.mu.Lock()
		f.savedDeployments[id] = string(b)
		f.mu.Unlock()
	}
	for _, id := range dels {
		if err := f.cfg.Store.Delete(ctx, keyDeployments+id); err != nil {
			f.log.Error("could not remove a deployment record", "app", id, "err", err)
			continue
		}
		f.mu.Lock()
		delete(f.savedDeployments, id)
		f.mu.Unlock()
	}
}

// loadDeployments restores the deployments in progress. Caller is New.
func (f *Framework) loadDeployments(ctx context.Context) error {
	stored, err := f.cfg.Store.List(ctx, keyDeployments)
	if err != nil {
		return fmt.Errorf("apps: load deployments: %w", err)
	}
	f.savedDeployments = map[string]string{}
	for key, b := range stored {
		var r deploymentRecord
		if err := json.Unmarshal(b, &r); err != nil {
			f.log.Error("skipping unreadable deployment record", "key", key, "err", err)
			continue
		}
		id := key[len(keyDeployments):]
		a := f.apps[id]
		if a == nil {
			continue
		}
		a.deployment, a.deployedAt, a.halted, a.prevDef = r.ID, r.Started, r.Halted, r.Prev
		f.savedDeployments[id] = string(b)
	}
	return nil
}
