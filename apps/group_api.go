package apps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// /v2/groups: the group tree (groups.go) and changes to many apps at once.
// A change is checked in full (every app valid, no conflict) before any of
// it is applied, and all its apps share one version and one deployment ID.

// groupIDOf is the group a /v2/groups request names ("/" without one).
func groupIDOf(r *http.Request) string {
	id := strings.Trim(r.PathValue("id"), "/")
	return "/" + id
}

func decodeGroup(body []byte, g *marathon.Group) error {
	if err := json.Unmarshal(body, g); err != nil {
		v := &validationError{}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			v.add("/"+strings.ReplaceAll(te.Field, ".", "/"), fmt.Sprintf("expected %s, got %s", te.Type, te.Value))
		} else {
			v.add("/", "Invalid JSON: "+err.Error())
		}
		return v
	}
	return nil
}

func (f *Framework) handleGetGroup(w http.ResponseWriter, r *http.Request) {
	g, err := f.Group(groupIDOf(r))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (f *Framework) handleCreateGroup(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var g marathon.Group
	if err := decodeGroup(body, &g); err != nil {
		writeError(w, err)
		return
	}
	res, id, err := f.CreateGroup(r.Context(), g)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", "/v2/groups"+strings.TrimSuffix(id, "/"))
	writeJSON(w, http.StatusCreated, res)
}

func (f *Framework) handleUpdateGroup(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var g marathon.Group
	if err := decodeGroup(body, &g); err != nil {
		writeError(w, err)
		return
	}
	res, err := f.UpdateGroup(r.Context(), groupIDOf(r), g)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (f *Framework) handleDeleteGroup(w http.ResponseWriter, r *http.Request) {
	res, err := f.DeleteGroup(r.Context(), groupIDOf(r))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// tree builds the whole group tree. Caller holds mu.
func (f *Framework) tree() marathon.Group {
	apps := make([]marathon.App, 0, len(f.apps))
	for _, a := range f.apps {
		apps = append(apps, f.view(a, false))
	}
	recs := make([]groupRecord, 0, len(f.groups))
	for _, g := range f.groups {
		recs = append(recs, g)
	}
	return buildTree(apps, recs)
}

// Group returns the group id and everything in it.
func (f *Framework) Group(id string) (marathon.Group, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := findGroup(f.tree(), id)
	if !ok {
		return marathon.Group{}, fmt.Errorf("%w: Group '%s' does not exist", errNotFound, id)
	}
	return g, nil
}

// groupExists reports whether any app or group record is in group id.
// Caller holds mu.
func (f *Framework) groupExists(id string) bool {
	for aid := range f.apps {
		if under(aid, id) && aid != id {
			return true
		}
	}
	for gid := range f.groups {
		if under(gid, id) {
			return true
		}
	}
	return false
}

// CreateGroup creates a group and all the apps and groups in it, or
// nothing: every app is validated first, and any that exists is a
// conflict. It returns the result and the group's ID.
func (f *Framework) CreateGroup(ctx context.Context, g marathon.Group) (marathon.DeploymentResult, string, error) {
	flat, err := flatten(g, "/")
	if err != nil {
		return marathon.DeploymentResult{}, "", err
	}
	id := flat.Groups[0].ID
	f.mu.Lock()
	if id != "/" && f.groupExists(id) {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, "", fmt.Errorf("%w: Group %s is already created. Use PUT to change this group.", errExists, id)
	}
	for _, rec := range flat.Groups {
		if _, ok := f.apps[rec.ID]; ok {
			f.mu.Unlock()
			return marathon.DeploymentResult{}, "", fmt.Errorf("%w: An app with id [%s] already exists: a group cannot have its ID.", errExists, rec.ID)
		}
	}
	for _, app := range flat.Apps {
		if _, ok := f.apps[app.ID]; ok {
			f.mu.Unlock()
			return marathon.DeploymentResult{}, "", fmt.Errorf("%w: An app with id [%s] already exists.", errExists, app.ID)
		}
	}
	res, _, err := f.applyGroupLocked(ctx, id, flat, false)
	f.mu.Unlock()
	if err != nil {
		return marathon.DeploymentResult{}, "", err
	}
	f.log.Info("group created", "group", id, "apps", len(flat.Apps))
	return res, id, nil
}

// UpdateGroup applies a PUT to group id: with scaleBy, every app in it is
// scaled by that factor; otherwise the group becomes what the body says
// (its apps created or updated, apps of the group it does not list removed).
func (f *Framework) UpdateGroup(ctx context.Context, id string, g marathon.Group) (marathon.DeploymentResult, error) {
	if g.ScaleBy != nil {
		return f.scaleGroup(ctx, id, *g.ScaleBy)
	}
	g.ID = id
	flat, err := flatten(g, "/")
	if err != nil {
		return marathon.DeploymentResult{}, err
	}
	f.mu.Lock()
	res, kills, err := f.applyGroupLocked(ctx, id, flat, true)
	f.mu.Unlock()
	f.killTasks(ctx, kills)
	if err != nil {
		return marathon.DeploymentResult{}, err
	}
	f.log.Info("group updated", "group", id, "apps", len(flat.Apps))
	f.rollStep(ctx)
	f.scaleDown(ctx)
	return res, nil
}

// applyGroupLocked installs a flattened group: service ports, then every
// app and group record persisted, then (replace) the apps and records of
// the group that are not in it removed. It returns the tasks of removed
// apps, for the caller to kill once it has let go of mu. Caller holds mu.
func (f *Framework) applyGroupLocked(ctx context.Context, id string, flat flatGroup, replace bool) (res marathon.DeploymentResult, kills []*taskState, err error) {
	var drop func(string) bool
	if replace {
		listed := map[string]bool{}
		for _, a := range flat.Apps {
			listed[a.ID] = true
		}
		for _, g := range flat.Groups {
			listed[g.ID] = true
		}
		drop = func(x string) bool { return under(x, id) && !listed[x] }
	}
	if err := f.cycleError(flat.Apps, flat.Groups, drop); err != nil {
		return res, nil, err
	}
	for i := range flat.Apps {
		app := &flat.Apps[i]
		if a, ok := f.apps[app.ID]; ok {
			// Service ports survive an update that leaves them at 0.
			keepServicePorts(&a.def, app)
		}
		if err := f.assignServicePorts(app, flat.Apps...); err != nil {
			return res, nil, prefixPaths(err, fmt.Sprintf("/apps(%d)", i))
		}
	}
	now := f.newVersion()
	deployment := newUUID()
	keep := map[string]bool{}
	for _, app := range flat.Apps {
		keep[app.ID] = true
		if err := f.installLocked(ctx, app, now, deployment); err != nil {
			return res, nil, err
		}
	}
	keepGroup := map[string]bool{}
	for _, rec := range flat.Groups {
		keepGroup[rec.ID] = true
		if rec.ID == "/" && len(rec.Dependencies) == 0 {
			continue // the root always exists
		}
		rec.Version = now
		b, _ := json.Marshal(rec)
		if err := f.cfg.Store.Put(ctx, keyGroups+rec.ID, b); err != nil {
			return res, nil, fmt.Errorf("apps: persist group %s: %w", rec.ID, err)
		}
		f.groups[rec.ID] = rec
	}
	if replace {
		for aid := range f.apps {
			if under(aid, id) && !keep[aid] {
				tasks, err := f.deleteLocked(ctx, aid)
				kills = append(kills, tasks...)
				if err != nil {
					return res, kills, err
				}
			}
		}
		for gid := range f.groups {
			if under(gid, id) && !keepGroup[gid] {
				if err := f.deleteGroupRecordLocked(ctx, gid); err != nil {
					return res, kills, err
				}
			}
		}
	}
	f.wantOffers = true
	return marathon.DeploymentResult{Version: now, DeploymentID: deployment}, kills, nil
}

// prefixPaths moves the paths of a validation error under prefix.
func prefixPaths(err error, prefix string) error {
	var v *validationError
	if !errors.As(err, &v) {
		return err
	}
	out := &validationError{}
	for _, d := range v.details {
		for _, e := range d.Errors {
			out.add(prefix+d.Path, e)
		}
	}
	return out
}

// installLocked puts a validated app definition in place: a new app, or a
// new version of one when its definition or instance count changed (an
// app the change leaves as it is keeps its version). Caller holds mu.
func (f *Framework) installLocked(ctx context.Context, app marathon.App, now, deployment string) error {
	a, ok := f.apps[app.ID]
	if !ok {
		app.Version = now
		app.VersionInfo = &marathon.VersionInfo{LastScalingAt: now, LastConfigChangeAt: now}
		if err := f.persist(ctx, app); err != nil {
			return err
		}
		f.apps[app.ID] = &appState{def: app, tasks: map[string]*taskState{}}
		f.events.publish("api_post_event", map[string]any{"uri": "/v2/apps" + app.ID, "appDefinition": app})
		return nil
	}
	before, _ := json.Marshal(specOf(a.def))
	after, _ := json.Marshal(specOf(app))
	changed := string(before) != string(after)
	if !changed && *app.Instances == *a.def.Instances {
		return nil
	}
	app.Version = now
	app.VersionInfo = &marathon.VersionInfo{LastScalingAt: now, LastConfigChangeAt: configVersion(a.def)}
	if changed {
		app.VersionInfo.LastConfigChangeAt = now
	}
	if err := f.persist(ctx, app); err != nil {
		return err
	}
	prev := a.def
	a.def = app
	a.delay, a.delayUntil = 0, time.Time{}
	a.offers = offerStats{}
	if changed {
		a.startDeployment(deployment, prev)
	}
	f.events.publish("api_post_event", map[string]any{"uri": "/v2/apps" + app.ID, "appDefinition": app})
	return nil
}

// scaleGroup multiplies the instances of every app in group id by factor.
func (f *Framework) scaleGroup(ctx context.Context, id string, factor float64) (marathon.DeploymentResult, error) {
	if factor < 0 || math.IsNaN(factor) || math.IsInf(factor, 0) {
		v := &validationError{}
		v.add("/scaleBy", "must be 0 or more")
		return marathon.DeploymentResult{}, v
	}
	deployment := newUUID()
	f.mu.Lock()
	now := f.newVersion()
	if !f.groupExists(id) {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, fmt.Errorf("%w: Group '%s' does not exist", errNotFound, id)
	}
	for aid, a := range f.apps {
		if !under(aid, id) {
			continue
		}
		next := a.def
		n := int(math.Ceil(float64(*a.def.Instances) * factor))
		next.Instances = &n
		if err := f.installLocked(ctx, next, now, deployment); err != nil {
			f.mu.Unlock()
			return marathon.DeploymentResult{}, err
		}
	}
	f.wantOffers = true
	f.mu.Unlock()
	f.scaleDown(ctx)
	return marathon.DeploymentResult{Version: now, DeploymentID: deployment}, nil
}

// DeleteGroup removes group id: every app in it (their tasks are killed)
// and its groups.
func (f *Framework) DeleteGroup(ctx context.Context, id string) (marathon.DeploymentResult, error) {
	f.mu.Lock()
	if id != "/" && !f.groupExists(id) {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, fmt.Errorf("%w: Group '%s' does not exist", errNotFound, id)
	}
	var kills []*taskState
	for aid := range f.apps {
		if under(aid, id) {
			tasks, err := f.deleteLocked(ctx, aid)
			if err != nil {
				f.mu.Unlock()
				return marathon.DeploymentResult{}, err
			}
			kills = append(kills, tasks...)
		}
	}
	for gid := range f.groups {
		if under(gid, id) {
			if err := f.deleteGroupRecordLocked(ctx, gid); err != nil {
				f.mu.Unlock()
				return marathon.DeploymentResult{}, err
			}
		}
	}
	f.mu.Unlock()
	f.log.Info("group deleted", "group", id, "tasks", len(kills))
	f.killTasks(ctx, kills)
	return marathon.DeploymentResult{Version: time.Now().UTC().Format(timeFormat), DeploymentID: newUUID()}, nil
}

func (f *Framework) deleteGroupRecordLocked(ctx context.Context, id string) error {
	if err := f.cfg.Store.Delete(ctx, keyGroups+id); err != nil {
		return fmt.Errorf("apps: delete group %s: %w", id, err)
	}
	delete(f.groups, id)
	return nil
}

// cycleError refuses a change that would leave apps waiting for each
// other: the current apps and groups with apps and groups put in their
// place and those drop says are removed. Caller holds mu.
func (f *Framework) cycleError(apps []marathon.App, groups []groupRecord, drop func(id string) bool) error {
	all := make(map[string]marathon.App, len(f.apps)+len(apps))
	for id, a := range f.apps {
		if drop == nil || !drop(id) {
			all[id] = a.def
		}
	}
	for _, a := range apps {
		all[a.ID] = a
	}
	recs := make(map[string]groupRecord, len(f.groups)+len(groups))
	for id, g := range f.groups {
		if drop == nil || !drop(id) {
			recs[id] = g
		}
	}
	for _, g := range groups {
		recs[g.ID] = g
	}
	if c := dependencyCycle(all, recs); c != "" {
		v := &validationError{}
		v.add("/dependencies", "dependency cycle: "+c)
		return v
	}
	return nil
}
