package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/keelhq/keel/api/marathon"
)

// Killing tasks through the API, as Marathon does: DELETE
// /v2/apps/{id}/tasks[?host=h] kills an app's tasks (on one host),
// DELETE /v2/apps/{id}/tasks/{taskId} one of them, POST /v2/tasks/delete
// those listed in {"ids": [...]}. A killed instance is replaced, unless
// ?scale=true, which lowers the app's instances by as many (a new
// version, a scaling change). ?wipe=true forgets the instance at once
// rather than when its kill is confirmed (Keel has no persistent volumes
// to destroy); it is killed again should it report. scale and wipe do
// not go together.

var errBadRequest = errors.New("apps: bad request")

// killOptions are the query parameters of the kill endpoints.
type killOptions struct {
	scale, wipe bool
}

func parseKillOptions(r *http.Request) (killOptions, error) {
	q := r.URL.Query()
	o := killOptions{scale: q.Get("scale") == "true", wipe: q.Get("wipe") == "true"}
	if o.scale && o.wipe {
		return o, fmt.Errorf("%w: scale and wipe cannot be used together", errBadRequest)
	}
	return o, nil
}

// KillAppTasks kills the tasks of app id (those on host, if not empty).
func (f *Framework) KillAppTasks(ctx context.Context, id, host string, o killOptions) ([]marathon.Task, *marathon.DeploymentResult, error) {
	f.mu.Lock()
	a, ok := f.apps[id]
	var ids []string
	if ok {
		for tid, t := range a.tasks {
			if host == "" || t.host == host {
				ids = append(ids, tid)
			}
		}
	}
	f.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id)
	}
	return f.killSelected(ctx, map[string][]string{id: ids}, o)
}

// KillTasks kills tasks by ID, whatever their apps; an unknown ID fails
// the whole request before anything is killed.
func (f *Framework) KillTasks(ctx context.Context, ids []string, o killOptions) ([]marathon.Task, *marathon.DeploymentResult, error) {
	byApp := map[string][]string{}
	f.mu.Lock()
	for _, tid := range ids {
		appID, _ := appIDOfTask(tid)
		a := f.apps[appID]
		if a == nil || a.tasks[tid] == nil {
			f.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: Invalid task id %s", errBadRequest, tid)
		}
		byApp[appID] = append(byApp[appID], tid)
	}
	f.mu.Unlock()
	return f.killSelected(ctx, byApp, o)
}

// killSelected kills tasks (app ID -> task IDs). It returns the killed
// tasks as they were, and with o.scale the deployment of the scale-down.
func (f *Framework) killSelected(ctx context.Context, byApp map[string][]string, o killOptions) ([]marathon.Task, *marathon.DeploymentResult, error) {
	var kills []*taskState
	var wiped []string
	killed := []marathon.Task{}
	var res *marathon.DeploymentResult
	f.mu.Lock()
	if o.scale {
		res = &marathon.DeploymentResult{Version: f.newVersion(), DeploymentID: newUUID()}
	}
	for appID, ids := range byApp {
		a := f.apps[appID]
		if a == nil {
			continue
		}
		n := 0
		for _, tid := range ids {
			t := a.tasks[tid]
			if t == nil {
				continue
			}
			killed = append(killed, f.taskView(a, t))
			if t.active() {
				n++
			}
			t.killing = true
			kills = append(kills, t)
			if o.wipe {
				delete(a.tasks, tid)
				if a.expunged == nil {
					a.expunged = map[string]bool{}
				}
				a.expunged[tid] = true
				wiped = append(wiped, tid)
			}
		}
		if o.scale && n > 0 {
			next := a.def
			inst := max(0, *a.def.Instances-n)
			next.Instances = &inst
			next.Version = res.Version
			vi := marathon.VersionInfo{LastScalingAt: res.Version}
			if a.def.VersionInfo != nil {
				vi.LastConfigChangeAt = a.def.VersionInfo.LastConfigChangeAt
			}
			next.VersionInfo = &vi
			if err := f.persist(ctx, next); err != nil {
				f.mu.Unlock()
				return nil, nil, err
			}
			a.def = next
			f.log.Info("app scaled down by killed tasks", "app", appID, "instances", inst)
		}
	}
	f.wantOffers = true
	f.mu.Unlock()
	for _, id := range wiped {
		if err := f.cfg.Store.Delete(ctx, keyTasks+id); err != nil {
			f.log.Error("could not delete task record", "task_id", id, "err", err)
		}
	}
	f.killTasks(ctx, kills)
	sort.Slice(killed, func(i, j int) bool { return killed[i].ID < killed[j].ID })
	return killed, res, nil
}

// handleKillAppTasks serves DELETE /v2/apps/{id}/tasks and
// DELETE /v2/apps/{id}/tasks/{taskId}.
func (f *Framework) handleKillAppTasks(w http.ResponseWriter, r *http.Request, id, taskID string) {
	o, err := parseKillOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var killed []marathon.Task
	var res *marathon.DeploymentResult
	if taskID == "" {
		killed, res, err = f.KillAppTasks(r.Context(), id, r.URL.Query().Get("host"), o)
	} else {
		if _, err := f.getApp(id); err != nil {
			writeError(w, err)
			return
		}
		if owner, _ := appIDOfTask(taskID); owner != id {
			writeError(w, fmt.Errorf("%w: Task '%s' does not exist", errNotFound, taskID))
			return
		}
		killed, res, err = f.KillTasks(r.Context(), []string{taskID}, o)
		if errors.Is(err, errBadRequest) && !strings.Contains(err.Error(), "scale and wipe") {
			err = fmt.Errorf("%w: Task '%s' does not exist", errNotFound, taskID)
		}
	}
	switch {
	case err != nil:
		writeError(w, err)
	case res != nil:
		writeJSON(w, http.StatusOK, res)
	case taskID != "" && len(killed) == 1:
		writeJSON(w, http.StatusOK, marathon.TaskResponse{Task: killed[0]})
	default:
		writeJSON(w, http.StatusOK, marathon.TasksResponse{Tasks: killed})
	}
}

// handleDeleteTasks serves POST /v2/tasks/delete.
func (f *Framework) handleDeleteTasks(w http.ResponseWriter, r *http.Request) {
	o, err := parseKillOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req marathon.DeleteTasks
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, fmt.Errorf("%w: Invalid JSON: %v", errBadRequest, err))
		return
	}
	killed, res, err := f.KillTasks(r.Context(), req.IDs, o)
	switch {
	case err != nil:
		writeError(w, err)
	case res != nil:
		writeJSON(w, http.StatusOK, res)
	default:
		writeJSON(w, http.StatusOK, marathon.TasksResponse{Tasks: killed})
	}
}
