package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// Errors of app operations, mapped to Marathon's status codes.
var (
	errNotFound = errors.New("apps: no such app")
	errExists   = errors.New("apps: app exists")
)

const maxBody = 1 << 20

// Handler returns the Marathon v2 API.
func (f *Framework) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/apps", f.handleListApps)
	mux.HandleFunc("POST /v2/apps", f.handleCreateApp)
	mux.HandleFunc("/v2/apps/", f.handleApp)
	mux.HandleFunc("GET /v2/tasks", f.handleTasks)
	mux.HandleFunc("POST /v2/tasks/delete", f.handleDeleteTasks)
	mux.HandleFunc("GET /v2/groups", f.handleGetGroup)
	mux.HandleFunc("GET /v2/groups/{id...}", f.handleGetGroup)
	mux.HandleFunc("POST /v2/groups", f.handleCreateGroup)
	mux.HandleFunc("PUT /v2/groups", f.handleUpdateGroup)
	mux.HandleFunc("PUT /v2/groups/{id...}", f.handleUpdateGroup)
	mux.HandleFunc("DELETE /v2/groups", f.handleDeleteGroup)
	mux.HandleFunc("DELETE /v2/groups/{id...}", f.handleDeleteGroup)
	mux.HandleFunc("GET /v2/deployments", f.handleDeployments)
	mux.HandleFunc("DELETE /v2/deployments/{id}", f.handleCancelDeployment)
	mux.HandleFunc("GET /v2/events", f.handleEvents)
	mux.HandleFunc("GET /v2/queue", f.handleQueue)
	mux.HandleFunc("DELETE /v2/queue/{id...}", f.handleQueueDelay)
	mux.HandleFunc("GET /v2/info", f.handleInfo)
	mux.HandleFunc("GET /v2/leader", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"leader": f.cfg.Listen})
	})
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong\n") })
	if f.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(f.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	if f.cfg.UI != nil {
		mux.Handle("/ui/", http.StripPrefix("/ui", f.cfg.UI))
		mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: 200}
		mux.ServeHTTP(rec, r)
		f.metrics.requests.WithLabelValues(r.Method, strconv.Itoa(rec.code)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

// WriteHeader records the status code for the metrics.
func (s *statusRecorder) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach Flush and deadlines (SSE).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // commands hold '>' and '&'; Marathon prints them as they are
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var v *validationError
	switch {
	case errors.As(err, &v):
		writeJSON(w, http.StatusUnprocessableEntity, marathon.Error{Message: "Object is not valid", Details: v.details})
	case errors.Is(err, errNotFound):
		writeJSON(w, http.StatusNotFound, marathon.Error{Message: strings.TrimPrefix(err.Error(), "apps: ")})
	case errors.Is(err, errExists):
		writeJSON(w, http.StatusConflict, marathon.Error{Message: strings.TrimPrefix(err.Error(), "apps: ")})
	case errors.Is(err, errBadRequest):
		writeJSON(w, http.StatusBadRequest, marathon.Error{Message: strings.TrimPrefix(err.Error(), "apps: bad request: ")})
	default:
		writeJSON(w, http.StatusInternalServerError, marathon.Error{Message: err.Error()})
	}
}

// readBody reads at most maxBody bytes, answering 413 beyond.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, marathon.Error{Message: fmt.Sprintf("Request body exceeds %d bytes", maxBody)})
		return nil, false
	}
	return b, true
}

func (f *Framework) handleListApps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	embed := strings.Contains(strings.Join(q["embed"], ","), "apps.tasks")
	apps := f.listApps(q.Get("id"), embed)
	// ?label=KEY or ?label=KEY==VALUE or ?label=KEY!=VALUE, as Marathon.
	if sel := q.Get("label"); sel != "" {
		key, val, op := sel, "", ""
		for _, o := range []string{"==", "!="} {
			if k, v, ok := strings.Cut(sel, o); ok {
				key, val, op = k, v, o
				break
			}
		}
		kept := []marathon.App{}
		for _, a := range apps {
			v, has := a.Labels[key]
			if (op == "" && has) || (op == "==" && has && v == val) || (op == "!=" && (!has || v != val)) {
				kept = append(kept, a)
			}
		}
		apps = kept
	}
	writeJSON(w, http.StatusOK, marathon.AppsResponse{Apps: apps})
}

// queued is one entry of GET /v2/queue.
type queued struct {
	App   marathon.App `json:"app"`
	Count int          `json:"count"`
	Delay struct {
		TimeLeftSeconds int  `json:"timeLeftSeconds"`
		Overdue         bool `json:"overdue"`
	} `json:"delay"`
	// ProcessedOffersSummary tells why the app waits (see offers.go).
	ProcessedOffersSummary offersSummary `json:"processedOffersSummary"`
}

// handleQueue lists the apps waiting for instances and their launch delay.
func (f *Framework) handleQueue(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	f.mu.Lock()
	out := struct {
		Queue []queued `json:"queue"`
	}{Queue: []queued{}}
	for _, a := range f.apps {
		r := a.rollout()
		missing := r.Instances - r.New
		if missing <= 0 {
			continue
		}
		q := queued{App: f.view(a, false), Count: missing, ProcessedOffersSummary: a.offers.summary()}
		if left := a.delayUntil.Sub(now); left > 0 {
			q.Delay.TimeLeftSeconds = int(left.Seconds() + 0.999)
		} else {
			q.Delay.Overdue = true
		}
		out.Queue = append(out.Queue, q)
	}
	f.mu.Unlock()
	sort.Slice(out.Queue, func(i, j int) bool { return out.Queue[i].App.ID < out.Queue[j].App.ID })
	writeJSON(w, http.StatusOK, out)
}

// handleQueueDelay serves DELETE /v2/queue/{id}/delay: launch again now.
func (f *Framework) handleQueueDelay(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("id")
	if !strings.HasSuffix(rest, "/delay") {
		writeJSON(w, http.StatusNotFound, marathon.Error{Message: "Not found: " + r.URL.Path})
		return
	}
	id := normalizeID(strings.TrimSuffix(rest, "/delay"))
	f.mu.Lock()
	a, ok := f.apps[id]
	if ok {
		a.delay, a.delayUntil = 0, time.Time{}
		f.wantOffers = true
	}
	f.mu.Unlock()
	if !ok {
		writeError(w, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Framework) handleCreateApp(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var app marathon.App
	if err := decodeApp(body, &app); err != nil {
		writeError(w, err)
		return
	}
	out, err := f.CreateApp(r.Context(), app)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v2/apps"+out.ID)
	writeJSON(w, http.StatusCreated, out)
}

// handleApp routes /v2/apps/{id}[/tasks|/restart].
func (f *Framework) handleApp(w http.ResponseWriter, r *http.Request) {
	id := normalizeID(strings.TrimPrefix(r.URL.Path, "/v2/apps"))
	sub := ""
	for _, s := range []string{"/tasks", "/restart", "/versions"} {
		if strings.HasSuffix(id, s) {
			id, sub = strings.TrimSuffix(id, s), s
		}
	}
	version, taskID := "", ""
	if i := strings.LastIndex(id, "/tasks/"); sub == "" && i >= 0 && r.Method == http.MethodDelete && !f.exists(id) {
		// A task ID has no "/" (app path elements are joined by "_"); an
		// app whose ID has a "tasks" element keeps its own path.
		if t := id[i+len("/tasks/"):]; t != "" && !strings.Contains(t, "/") {
			id, sub, taskID = id[:i], "/tasks", t
		}
	}
	if i := strings.LastIndex(id, "/versions/"); sub == "" && i >= 0 {
		// A version is a timestamp: it has no "/" and starts with a digit.
		if v := id[i+len("/versions/"):]; v != "" && !strings.Contains(v, "/") && v[0] >= '0' && v[0] <= '9' {
			id, sub, version = id[:i], "/versions", v
		}
	}
	switch {
	case sub == "/versions" && r.Method == http.MethodGet:
		f.handleVersions(w, r, id, version)
	case sub == "/tasks" && r.Method == http.MethodDelete:
		f.handleKillAppTasks(w, r, id, taskID)
	case sub == "/tasks" && r.Method == http.MethodGet && taskID == "":
		tasks, err := f.appTasks(id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, marathon.TasksResponse{Tasks: tasks})
	case sub == "/restart" && r.Method == http.MethodPost:
		res, err := f.RestartApp(r.Context(), id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	case sub == "" && r.Method == http.MethodGet:
		app, err := f.getApp(id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, marathon.AppResponse{App: app})
	case sub == "" && (r.Method == http.MethodPut || r.Method == http.MethodPatch):
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		var upd marathon.App
		if err := decodeApp(body, &upd); err != nil {
			writeError(w, err)
			return
		}
		upd.ID = id
		res, err := f.UpdateApp(r.Context(), upd)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	case sub == "" && r.Method == http.MethodDelete:
		res, err := f.DeleteApp(r.Context(), id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, marathon.Error{Message: "Method " + r.Method + " not allowed on " + r.URL.Path})
	}
}

func (f *Framework) handleTasks(w http.ResponseWriter, r *http.Request) {
	// ?status=running, or several: ?status[]=staging&status[]=running.
	q := r.URL.Query()
	statuses := append(q["status"], q["status[]"]...)
	var out []marathon.Task
	for _, a := range f.listApps("", true) {
		for _, t := range a.Tasks {
			keep := len(statuses) == 0
			for _, s := range statuses {
				keep = keep || strings.EqualFold(t.State, "TASK_"+s)
			}
			if keep {
				out = append(out, t)
			}
		}
	}
	if out == nil {
		out = []marathon.Task{}
	}
	writeJSON(w, http.StatusOK, marathon.TasksResponse{Tasks: out})
}

func (f *Framework) handleInfo(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	fid := f.frameworkID
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "keel", "version": f.cfg.Version, "frameworkId": fid, "leader": f.cfg.Listen, "elected": true,
		"marathon_config": map[string]any{"framework_name": f.cfg.FrameworkName, "hostname": f.cfg.Hostname,
			"local_port_min": f.cfg.LocalPortMin, "local_port_max": f.cfg.LocalPortMax},
	})
}

// CreateApp validates, assigns service ports, persists and schedules app.
func (f *Framework) CreateApp(ctx context.Context, app marathon.App) (marathon.App, error) {
	if err := validate(&app); err != nil {
		return marathon.App{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.apps[app.ID]; ok {
		return marathon.App{}, fmt.Errorf("%w: An app with id [%s] already exists.", errExists, app.ID)
	}
	if err := f.cycleError([]marathon.App{app}, nil, nil); err != nil {
		return marathon.App{}, err
	}
	if err := f.assignServicePorts(&app); err != nil {
		return marathon.App{}, err
	}
	app.Version = f.newVersion()
	app.VersionInfo = &marathon.VersionInfo{LastScalingAt: app.Version, LastConfigChangeAt: app.Version}
	if err := f.persist(ctx, app); err != nil {
		return marathon.App{}, err
	}
	f.apps[app.ID] = &appState{def: app, tasks: map[string]*taskState{}}
	f.wantOffers = true
	f.events.publish("api_post_event", map[string]any{"uri": "/v2/apps" + app.ID, "appDefinition": app})
	f.log.Info("app created", "app", app.ID, "instances", *app.Instances)
	return f.view(f.apps[app.ID], false), nil
}

// UpdateApp applies a PUT: creates the app when missing, scales it, or
// changes its definition (old tasks are replaced).
func (f *Framework) UpdateApp(ctx context.Context, upd marathon.App) (marathon.DeploymentResult, error) {
	f.mu.Lock()
	a, ok := f.apps[upd.ID]
	f.mu.Unlock()
	if !ok {
		app, err := f.CreateApp(ctx, upd)
		if err != nil {
			return marathon.DeploymentResult{}, err
		}
		return marathon.DeploymentResult{Version: app.Version, DeploymentID: newUUID()}, nil
	}
	var next marathon.App
	var changed bool
	if isRollback(upd) {
		old, err := f.rollback(ctx, upd.ID, upd.Version)
		if err != nil {
			return marathon.DeploymentResult{}, err
		}
		f.mu.Lock()
		next = old
		before, _ := json.Marshal(specOf(a.def))
		after, _ := json.Marshal(specOf(next))
		changed = string(before) != string(after)
	} else {
		f.mu.Lock()
		next, changed = merge(a.def, upd)
	}
	if err := validate(&next); err != nil {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, err
	}
	if err := f.cycleError([]marathon.App{next}, nil, nil); err != nil {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, err
	}
	if err := f.assignServicePorts(&next); err != nil {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, err
	}
	now := f.newVersion()
	next.Version = now
	next.VersionInfo = &marathon.VersionInfo{LastScalingAt: now, LastConfigChangeAt: a.def.VersionInfo.LastConfigChangeAt}
	deployment := newUUID()
	if changed {
		next.VersionInfo.LastConfigChangeAt = now
	}
	if err := f.persist(ctx, next); err != nil {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, err
	}
	prev := a.def
	a.def = next
	a.delay, a.delayUntil = 0, time.Time{}
	a.offers = offerStats{}
	if changed {
		a.startDeployment(deployment, prev)
		f.events.publish("deployment_info", map[string]any{"plan": map[string]any{"id": deployment, "version": now},
			"currentStep": map[string]any{"actions": []map[string]string{{"action": "RestartApplication", "app": next.ID}}}})
	}
	f.events.publish("api_post_event", map[string]any{"uri": "/v2/apps" + next.ID, "appDefinition": next})
	f.wantOffers = true
	f.mu.Unlock()
	f.log.Info("app updated", "app", next.ID, "instances", *next.Instances, "config_changed", changed)
	f.rollStep(ctx)
	f.scaleDown(ctx)
	return marathon.DeploymentResult{Version: now, DeploymentID: deployment}, nil
}

// isRollback reports whether a PUT body asks for a version back: it names
// a version and nothing else but the ID. (A body with more fields is an
// ordinary update; its version, read-only, is ignored.)
func isRollback(upd marathon.App) bool {
	if upd.Version == "" {
		return false
	}
	rest := specOf(upd)
	rest.ID = ""
	b, _ := json.Marshal(rest)
	empty, _ := json.Marshal(specOf(marathon.App{}))
	return string(b) == string(empty)
}

// RestartApp replaces every task of the app by a rolling upgrade.
func (f *Framework) RestartApp(ctx context.Context, id string) (marathon.DeploymentResult, error) {
	f.mu.Lock()
	a, ok := f.apps[id]
	if !ok {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id)
	}
	// A restart is a rolling upgrade to the same definition.
	now := f.newVersion()
	next := a.def
	next.Version = now
	vi := *a.def.VersionInfo
	vi.LastConfigChangeAt = now
	next.VersionInfo = &vi
	if err := f.persist(ctx, next); err != nil {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, err
	}
	prev := a.def
	a.def = next
	a.startDeployment(newUUID(), prev)
	id2 := a.deployment
	f.wantOffers = true
	f.mu.Unlock()
	f.rollStep(ctx)
	return marathon.DeploymentResult{Version: now, DeploymentID: id2}, nil
}

// DeleteApp forgets the app and kills its tasks.
func (f *Framework) DeleteApp(ctx context.Context, id string) (marathon.DeploymentResult, error) {
	f.mu.Lock()
	tasks, err := f.deleteLocked(ctx, id)
	f.mu.Unlock()
	if err != nil {
		return marathon.DeploymentResult{}, err
	}
	f.log.Info("app deleted", "app", id, "tasks", len(tasks))
	f.killTasks(ctx, tasks)
	return marathon.DeploymentResult{Version: time.Now().UTC().Format(timeFormat), DeploymentID: newUUID()}, nil
}

// deleteLocked forgets app id and returns its tasks, for the caller to
// kill once it has let go of mu. Caller holds mu.
func (f *Framework) deleteLocked(ctx context.Context, id string) ([]*taskState, error) {
	a, ok := f.apps[id]
	if !ok {
		return nil, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id)
	}
	if err := f.cfg.Store.Delete(ctx, keyApps+id); err != nil {
		return nil, fmt.Errorf("apps: delete %s: %w", id, err)
	}
	delete(f.apps, id)
	f.dropVersions(ctx, id)
	f.events.publish("app_terminated_event", map[string]any{"appId": id})
	var tasks []*taskState
	for _, t := range a.tasks {
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// storedForm is the JSON an app definition is stored as: its definition,
// instances and version, without the read-only fields.
func storedForm(app marathon.App) ([]byte, error) {
	b, err := json.Marshal(specOf(app))
	if err == nil {
		var stored marathon.App
		_ = json.Unmarshal(b, &stored)
		stored.Instances, stored.Version, stored.VersionInfo = app.Instances, app.Version, app.VersionInfo
		b, err = json.Marshal(stored)
	}
	if err != nil {
		return nil, fmt.Errorf("apps: encode %s: %w", app.ID, err)
	}
	return b, nil
}

// persist writes an app definition. Caller holds mu.
func (f *Framework) persist(ctx context.Context, app marathon.App) error {
	b, err := storedForm(app)
	if err != nil {
		return err
	}
	if err := f.cfg.Store.Put(ctx, keyApps+app.ID, b); err != nil {
		return fmt.Errorf("apps: persist %s: %w", app.ID, err)
	}
	return f.keepVersion(ctx, app, b)
}

// assignServicePorts gives every port definition with port 0 a free
// service port and refuses explicit ports another app holds, counting
// the apps of pending (others being created with it) as held. Caller holds mu.
func (f *Framework) assignServicePorts(app *marathon.App, pending ...marathon.App) error {
	used := map[int]string{}
	for id, a := range f.apps {
		if id == app.ID {
			continue
		}
		for _, sp := range servicePortRefs(&a.def) {
			used[*sp] = id
		}
	}
	for _, p := range pending {
		if p.ID == app.ID {
			continue
		}
		for _, sp := range servicePortRefs(&p) {
			used[*sp] = p.ID
		}
	}
	v := &validationError{}
	pathOf := func(i int) string { return fmt.Sprintf("/portDefinitions(%d)/port", i) }
	if portMappings(app) != nil {
		pathOf = func(i int) string { return fmt.Sprintf("/container/portMappings(%d)/servicePort", i) }
	}
	for i, sp := range servicePortRefs(app) {
		if *sp != 0 {
			if other, ok := used[*sp]; ok {
				v.add(pathOf(i), fmt.Sprintf("service port %d is already used by app %s", *sp, other))
			}
			used[*sp] = app.ID
			continue
		}
		for p := f.cfg.LocalPortMin; p <= f.cfg.LocalPortMax; p++ {
			if _, taken := used[p]; !taken {
				*sp = p
				used[p] = app.ID
				break
			}
		}
		if *sp == 0 {
			v.add(pathOf(i), "no free service port left in the range")
		}
	}
	if len(v.details) > 0 {
		return v
	}
	return nil
}

// exists reports whether app id exists.
func (f *Framework) exists(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.apps[id]
	return ok
}

func (f *Framework) getApp(id string) (marathon.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[id]
	if !ok {
		return marathon.App{}, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id)
	}
	return f.view(a, true), nil
}

func (f *Framework) appTasks(id string) ([]marathon.Task, error) {
	app, err := f.getApp(id)
	if err != nil {
		return nil, err
	}
	if app.Tasks == nil {
		return []marathon.Task{}, nil
	}
	return app.Tasks, nil
}

func (f *Framework) listApps(idFilter string, embedTasks bool) []marathon.App {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []marathon.App{}
	for id, a := range f.apps {
		if idFilter == "" || strings.Contains(id, idFilter) {
			out = append(out, f.view(a, embedTasks))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// view renders an app with its counts (and tasks). Caller holds mu.
func (f *Framework) view(a *appState, withTasks bool) marathon.App {
	app := a.def
	app.Deployments = []marathon.DeploymentRef{}
	if a.deployment != "" {
		app.Deployments = append(app.Deployments, marathon.DeploymentRef{ID: a.deployment})
	}
	app.LastTaskFailure = a.lastFailure
	var tasks []marathon.Task
	for _, t := range a.tasks {
		switch t.state {
		case mesos.TaskStaging, mesos.TaskStarting:
			app.TasksStaged++
		case mesos.TaskRunning:
			app.TasksRunning++
		}
		if t.healthy != nil {
			if *t.healthy {
				app.TasksHealthy++
			} else {
				app.TasksUnhealthy++
			}
		}
		if withTasks {
			tasks = append(tasks, f.taskView(a, t))
		}
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].ID < tasks[j].ID })
	app.Tasks = tasks
	if withTasks && app.Tasks == nil {
		app.Tasks = []marathon.Task{}
	}
	return app
}

func (f *Framework) taskView(a *appState, t *taskState) marathon.Task {
	mt := marathon.Task{ID: t.id, AppID: a.def.ID, Host: t.host, Ports: t.ports, SlaveID: t.agentID,
		State: string(t.state), Version: t.version, StagedAt: t.staged.UTC().Format(timeFormat), IPAddresses: []marathon.IPAddress{}}
	if mt.Ports == nil {
		mt.Ports = []int{}
	}
	for _, sp := range servicePortRefs(&a.def) {
		mt.ServicePorts = append(mt.ServicePorts, *sp)
	}
	if mt.ServicePorts == nil {
		mt.ServicePorts = []int{}
	}
	if !t.started.IsZero() {
		mt.StartedAt = t.started.UTC().Format(timeFormat)
	}
	if t.healthy != nil {
		r := marathon.HealthCheckResult{Alive: *t.healthy, TaskID: t.id}
		if !*t.healthy {
			r.ConsecutiveFailures = 1
		}
		mt.HealthCheckResults = []marathon.HealthCheckResult{r}
	}
	for _, ip := range t.ips {
		proto := "IPv4"
		if strings.Contains(ip, ":") {
			proto = "IPv6"
		}
		mt.IPAddresses = append(mt.IPAddresses, marathon.IPAddress{IPAddress: ip, Protocol: proto})
	}
	return mt
}
