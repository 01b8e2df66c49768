package apps

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/keelhq/keel/api/marathon"
)

// Deployments: a change of definition starts one (a rolling upgrade, see
// deploy.go); every app changed by one request shares its ID. Canceling
// one (DELETE /v2/deployments/{id}) starts a new deployment back to the
// definitions it started from; with ?force=true it just stops: no more
// old tasks are killed for it, lost instances are replaced with the new
// version, and the app stays as it is until its next change.

// startDeployment marks a rolling upgrade from prev. Caller holds mu.
func (a *appState) startDeployment(id string, prev marathon.App) {
	a.deployment, a.deployedAt, a.halted = id, time.Now(), false
	if a.prevDef == nil {
		// A change during a deployment goes back, on cancel, to what was
		// there before either.
		a.prevDef = &prev
	}
}

// deployment is one entry of GET /v2/deployments.
type deployment struct {
	ID             string           `json:"id"`
	Version        string           `json:"version"`
	AffectedApps   []string         `json:"affectedApps"`
	CurrentStep    int              `json:"currentStep"`
	TotalSteps     int              `json:"totalSteps"`
	CurrentActions []deployAction   `json:"currentActions"`
	Steps          [][]deployAction `json:"steps"`
	// ReadinessCheckResults are the latest readiness results of the new
	// tasks of the deployment's apps (readiness.go).
	ReadinessCheckResults []marathon.ReadinessCheckResult `json:"readinessCheckResults"`
}

type deployAction struct {
	Action string `json:"action"`
	App    string `json:"app"`
}

func (f *Framework) handleDeployments(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	byID := map[string]*deployment{}
	for id, a := range f.apps {
		if a.deployment == "" {
			continue
		}
		d := byID[a.deployment]
		if d == nil {
			d = &deployment{ID: a.deployment, CurrentStep: 1, TotalSteps: 1, CurrentActions: []deployAction{},
				ReadinessCheckResults: []marathon.ReadinessCheckResult{}}
			byID[a.deployment] = d
		}
		d.ReadinessCheckResults = append(d.ReadinessCheckResults, a.readinessResults()...)
		d.Version = max(d.Version, a.def.Version)
		d.AffectedApps = append(d.AffectedApps, id)
		d.CurrentActions = append(d.CurrentActions, deployAction{Action: "RestartApplication", App: id})
	}
	f.mu.Unlock()
	out := []deployment{}
	for _, d := range byID {
		sort.Strings(d.AffectedApps)
		sort.Slice(d.CurrentActions, func(i, j int) bool { return d.CurrentActions[i].App < d.CurrentActions[j].App })
		sort.Slice(d.ReadinessCheckResults, func(i, j int) bool {
			ri, rj := d.ReadinessCheckResults[i], d.ReadinessCheckResults[j]
			if ri.TaskID != rj.TaskID {
				return ri.TaskID < rj.TaskID
			}
			return ri.Name < rj.Name
		})
		d.Steps = [][]deployAction{d.CurrentActions}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, out)
}

func (f *Framework) handleCancelDeployment(w http.ResponseWriter, r *http.Request) {
	force := r.URL.Query().Get("force") == "true"
	res, err := f.CancelDeployment(r.Context(), r.PathValue("id"), force)
	if err != nil {
		writeError(w, err)
		return
	}
	if force {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// CancelDeployment stops deployment id: with force, where it is;
// otherwise by a new deployment back to where it started.
func (f *Framework) CancelDeployment(ctx context.Context, id string, force bool) (marathon.DeploymentResult, error) {
	f.mu.Lock()
	var apps []*appState
	for _, a := range f.apps {
		if a.deployment == id && id != "" {
			apps = append(apps, a)
		}
	}
	if len(apps) == 0 {
		f.mu.Unlock()
		return marathon.DeploymentResult{}, fmt.Errorf("%w: DeploymentPlan %s does not exist", errNotFound, id)
	}
	if force {
		for _, a := range apps {
			a.deployment, a.prevDef, a.halted = "", nil, true
		}
		f.mu.Unlock()
		f.log.Info("deployment stopped", "deployment", id, "apps", len(apps))
		f.events.publish("deployment_failed", map[string]any{"id": id, "plan": map[string]any{"id": id},
			"reason": "stopped with DELETE /v2/deployments/" + id + "?force=true"})
		return marathon.DeploymentResult{}, nil
	}
	now := f.newVersion()
	back := newUUID()
	for _, a := range apps {
		if a.prevDef == nil {
			// Nothing to go back to (the framework restarted since it
			// began): stop it where it is.
			a.deployment, a.halted = "", true
			continue
		}
		// Back to the old definition as a new version: every task, of
		// either side, is replaced by the rolling upgrade.
		prev := *a.prevDef
		prev.Version = now
		prev.VersionInfo = &marathon.VersionInfo{LastScalingAt: now, LastConfigChangeAt: now}
		if err := f.persist(ctx, prev); err != nil {
			f.mu.Unlock()
			return marathon.DeploymentResult{}, err
		}
		canceled := a.def
		a.def = prev
		a.delay, a.delayUntil = 0, time.Time{}
		a.offers = offerStats{}
		a.deployment, a.prevDef = "", nil
		a.startDeployment(back, canceled)
	}
	f.wantOffers = true
	f.mu.Unlock()
	f.log.Info("deployment canceled; rolling back", "deployment", id, "rollback", back)
	f.rollStep(ctx)
	f.scaleDown(ctx)
	return marathon.DeploymentResult{Version: now, DeploymentID: back}, nil
}
