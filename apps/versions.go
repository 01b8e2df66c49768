package apps

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// App versions, as Marathon keeps them: every definition an app has had
// (each change of config or scale is one, named by its version
// timestamp), the latest maxVersions of them, persisted through the Store
// under versions/{app ID}@{version}. "@" cannot be in an app ID, so one
// app's versions are never listed with another's.

const (
	keyVersions = "versions/"
	maxVersions = 50
)

// newVersion is the version of a change made now: the time, made later
// than every version issued before, so no two changes share one.
// Caller holds mu.
func (f *Framework) newVersion() string {
	now := time.Now().UTC().Truncate(time.Millisecond)
	if !now.After(f.lastVersion) {
		now = f.lastVersion.Add(time.Millisecond)
	}
	f.lastVersion = now
	return now.Format(timeFormat)
}

func versionKey(id, version string) string { return keyVersions + id + "@" + version }

// keepVersion records app (as persisted, in b) as one of its versions and
// drops the oldest beyond maxVersions. Caller holds mu.
func (f *Framework) keepVersion(ctx context.Context, app marathon.App, b []byte) error {
	if app.Version == "" {
		return nil
	}
	if a := f.apps[app.ID]; a != nil && len(f.versions[app.ID]) == 0 && a.def.Version != "" && a.def.Version != app.Version {
		// An app stored before versions were kept: its definition until
		// now is a version too.
		if ob, err := storedForm(a.def); err == nil {
			if err := f.cfg.Store.Put(ctx, versionKey(app.ID, a.def.Version), ob); err == nil {
				f.versions[app.ID] = []string{a.def.Version}
			}
		}
	}
	if err := f.cfg.Store.Put(ctx, versionKey(app.ID, app.Version), b); err != nil {
		return fmt.Errorf("apps: persist version %s of %s: %w", app.Version, app.ID, err)
	}
	vs := f.versions[app.ID]
	i := sort.SearchStrings(vs, app.Version)
	if i == len(vs) || vs[i] != app.Version {
		vs = append(vs, "")
		copy(vs[i+1:], vs[i:])
		vs[i] = app.Version
	}
	for len(vs) > maxVersions {
		if err := f.cfg.Store.Delete(ctx, versionKey(app.ID, vs[0])); err != nil {
			f.log.Warn("could not delete an old app version", "app", app.ID, "version", vs[0], "err", err)
			break
		}
		vs = vs[1:]
	}
	f.versions[app.ID] = append([]string(nil), vs...)
	return nil
}

// dropVersions forgets every version of a deleted app. Caller holds mu.
func (f *Framework) dropVersions(ctx context.Context, id string) {
	for _, v := range f.versions[id] {
		if err := f.cfg.Store.Delete(ctx, versionKey(id, v)); err != nil {
			f.log.Warn("could not delete an app version", "app", id, "version", v, "err", err)
		}
	}
	delete(f.versions, id)
}

// loadVersions indexes the stored versions (called by New).
func (f *Framework) loadVersions(ctx context.Context) error {
	stored, err := f.cfg.Store.List(ctx, keyVersions)
	if err != nil {
		return fmt.Errorf("apps: load versions: %w", err)
	}
	for key := range stored {
		id, v, ok := strings.Cut(strings.TrimPrefix(key, keyVersions), "@")
		if !ok {
			continue
		}
		f.versions[id] = append(f.versions[id], v)
	}
	for _, vs := range f.versions {
		sort.Strings(vs)
		if t, err := time.Parse(timeFormat, vs[len(vs)-1]); err == nil && t.After(f.lastVersion) {
			f.lastVersion = t
		}
	}
	return nil
}

// Versions lists the versions of app id, newest first.
func (f *Framework) Versions(id string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[id]
	if !ok {
		return nil, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id)
	}
	vs := f.versions[id]
	if n := len(vs); n == 0 || vs[n-1] < a.def.Version {
		// An app stored before versions were kept has its current one.
		vs = append(append([]string(nil), vs...), a.def.Version)
	}
	out := make([]string, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, vs[i])
	}
	return out, nil
}

// AppVersion returns the definition of app id as of version.
func (f *Framework) AppVersion(ctx context.Context, id, version string) (marathon.App, error) {
	f.mu.Lock()
	a, ok := f.apps[id]
	var cur marathon.App
	if ok {
		cur = a.def
	}
	f.mu.Unlock()
	if !ok {
		return marathon.App{}, fmt.Errorf("%w: App '%s' does not exist", errNotFound, id)
	}
	key := versionKey(id, version)
	got, err := f.cfg.Store.List(ctx, key)
	if err != nil {
		return marathon.App{}, fmt.Errorf("apps: read version %s of %s: %w", version, id, err)
	}
	b, ok := got[key]
	if !ok && version == cur.Version {
		cur.Deployments = []marathon.DeploymentRef{}
		return cur, nil
	}
	if !ok {
		return marathon.App{}, fmt.Errorf("%w: App '%s' does not exist in version %s", errNotFound, id, version)
	}
	var app marathon.App
	if err := json.Unmarshal(b, &app); err != nil {
		return marathon.App{}, fmt.Errorf("apps: decode version %s of %s: %w", version, id, err)
	}
	app.Deployments = []marathon.DeploymentRef{}
	return app, nil
}

// rollback turns a PUT {"version": v} into the update that restores the
// app's definition as of v (a new version with that content).
func (f *Framework) rollback(ctx context.Context, id, version string) (marathon.App, error) {
	old, err := f.AppVersion(ctx, id, version)
	if err != nil {
		return marathon.App{}, err
	}
	old.ID = id
	old.Version, old.VersionInfo = "", nil
	return old, nil
}

// handleVersions serves GET /v2/apps/{id}/versions[/{version}].
func (f *Framework) handleVersions(w http.ResponseWriter, r *http.Request, id, version string) {
	if version == "" {
		vs, err := f.Versions(id)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, marathon.VersionsResponse{Versions: vs})
		return
	}
	app, err := f.AppVersion(r.Context(), id, version)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, app)
}
