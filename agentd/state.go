package agentd

import (
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"strconv"

	"github.com/keelhq/keel/api/mesos"
)

// v0Executor is an executor in an agent's /state (Mesos' shape): Keel runs
// one task per executor, named after the task, whose directory is the
// task's sandbox (what UIs hand to /files).
type v0Executor struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Source    string         `json:"source"`
	Container string         `json:"container,omitempty"`
	Directory string         `json:"directory"`
	Resources map[string]any `json:"resources"`
	Tasks     []mesos.Task   `json:"tasks"`
}

type v0Framework struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	User      string       `json:"user,omitempty"`
	Role      string       `json:"role,omitempty"`
	Executors []v0Executor `json:"executors"`
}

// handleState serves /state as Mesos agents do (id, pid, hostname,
// resources, attributes, frameworks with their executors and tasks), plus
// a flat "tasks" list. Read-only, so browsers may read it across origins.
func (a *Agent) handleState(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	byFw := map[string]*v0Framework{}
	var tasks []mesos.Task
	for _, t := range a.tasks {
		mt := t.mesosTask(a.id)
		tasks = append(tasks, mt)
		f := byFw[t.fid.Value]
		if f == nil {
			role := "*"
			if len(t.fwInfo.Roles) > 0 {
				role = t.fwInfo.Roles[0]
			} else if t.fwInfo.Role != "" {
				role = t.fwInfo.Role
			}
			f = &v0Framework{ID: t.fid.Value, Name: t.fwInfo.Name, User: t.fwInfo.User, Role: role}
			byFw[t.fid.Value] = f
		}
		ex := v0Executor{ID: t.info.TaskID.Value, Name: "Command Executor (Task: " + t.info.TaskID.Value + ")",
			Source: t.info.TaskID.Value, Directory: t.sandbox, Resources: t.info.Resources.V0(), Tasks: []mesos.Task{mt}}
		if t.ctr != nil {
			ex.Container = t.ctr.id
		}
		f.Executors = append(f.Executors, ex)
	}
	id := a.id
	a.mu.Unlock()
	fws := make([]v0Framework, 0, len(byFw))
	for _, f := range byFw {
		sort.Slice(f.Executors, func(i, j int) bool { return f.Executors[i].ID < f.Executors[j].ID })
		fws = append(fws, *f)
	}
	sort.Slice(fws, func(i, j int) bool { return fws[i].ID < fws[j].ID })
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].TaskID.Value < tasks[j].TaskID.Value })
	attrs := map[string]any{}
	for _, at := range a.cfg.Attributes {
		switch {
		case at.Text != nil:
			attrs[at.Name] = at.Text.Value
		case at.Scalar != nil:
			attrs[at.Name] = at.Scalar.Value
		}
	}
	st := map[string]any{
		"id": id, "pid": "slave(1)@" + net.JoinHostPort(a.cfg.IP, strconv.Itoa(a.port)), "hostname": a.cfg.Hostname,
		"version": a.cfg.Version, "master": a.cfg.Master, "resources": a.cfg.Resources.V0(), "attributes": attrs,
		"frameworks": fws, "completed_frameworks": []v0Framework{}, "tasks": tasks,
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// readOnlyCORS lets pages of other origins (the master's UI) read h.
func readOnlyCORS(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h(w, r)
	}
}
