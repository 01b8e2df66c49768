package apps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os/user"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/reconnect"
)

// Master is the framework's connection to the leading master, with the
// semantics of the Mesos v1 scheduler API.
type Master interface {
	// Subscribe opens a SUBSCRIBE stream for info and calls handle with each
	// event in order until ctx is done (returns ctx.Err()) or the stream
	// breaks (returns another error). handle may call Call.
	Subscribe(ctx context.Context, info mesos.FrameworkInfo, handle func(mesos.Event)) error
	// Call sends one call on the current subscription; a nil FrameworkID is
	// filled in.
	Call(ctx context.Context, call mesos.Call) error
}

// Store persists the framework's state.
type Store interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) (map[string][]byte, error)
}

// Config configures the apps framework.
type Config struct {
	Master Master
	Store  Store
	// Listen is the Marathon API address, e.g. "127.0.0.1:8080".
	Listen string
	// FrameworkName defaults to "marathon", so Mesos-DNS names are
	// {app}.marathon.mesos.
	FrameworkName string
	Hostname      string
	// LocalPortMin and LocalPortMax bound assigned service ports
	// (default 10000-20000).
	LocalPortMin, LocalPortMax int
	Registerer                 prometheus.Registerer
	Gatherer                   prometheus.Gatherer
	Logger                     *slog.Logger
	// Version is reported by /v2/info.
	Version string
	// UI, when set, is served under /ui/ (the apps page).
	UI http.Handler
	// Clock is the time source of unreachableStrategy and of readiness
	// check intervals (nil: time.Now); tests move it by hand.
	Clock func() time.Time
}

const (
	keyApps        = "apps/"
	keyTasks       = "tasks/"
	keyFramework   = "framework/id"
	keyGroups      = "groups/"
	refuseSeconds  = 5.0
	reviveInterval = time.Second
)

// Framework is a running apps framework.
type Framework struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	events  eventBus

	mu          sync.Mutex
	apps        map[string]*appState
	groups      map[string]groupRecord // groups with dependencies or no apps
	versions    map[string][]string    // app ID -> stored versions, oldest first
	lastVersion time.Time              // the latest version issued (newVersion)
	frameworkID string
	connected   bool
	wantOffers  bool // demand appeared since the last REVIVE
	suppressed  bool // SUPPRESS sent since the last REVIVE
	// savedDeployments is what the store holds of each app's deployment
	// (its JSON), so saveDeployments writes only changes.
	savedDeployments map[string]string

	probe *http.Client // readiness checks
}

type appState struct {
	def         marathon.App
	tasks       map[string]*taskState
	delay       time.Duration // current launch backoff
	delayUntil  time.Time
	lastFailure *marathon.TaskFailure
	// deployment is the ID of the rolling upgrade in progress ("" = none).
	deployment string
	deployedAt time.Time
	// prevDef is the definition the deployment started from: what
	// canceling it (DELETE /v2/deployments/{id}) goes back to.
	prevDef *marathon.App
	// halted marks a rolling upgrade stopped where it was (a forced
	// cancel): no more old tasks are killed for it until the next change.
	halted bool
	// offers summarises the offers processed for the app (/v2/queue).
	offers offerStats
	// expunged are tasks forgotten after unreachableStrategy's
	// expungeAfterSeconds: killed if they ever report again.
	expunged map[string]bool
}

// configVersion is the version of an app's definition that tasks carry:
// it changes with the config, not with scaling.
func configVersion(app marathon.App) string {
	if app.VersionInfo != nil && app.VersionInfo.LastConfigChangeAt != "" {
		return app.VersionInfo.LastConfigChangeAt
	}
	return app.Version
}

// rollout describes the app's deployment state. Caller holds mu.
func (a *appState) rollout() rollout {
	r := rollout{Instances: *a.def.Instances, MinHealth: defaultMinHealth, MaxOver: defaultMaxOver}
	if us := a.def.UpgradeStrategy; us != nil {
		if us.MinimumHealthCapacity != nil {
			r.MinHealth = *us.MinimumHealthCapacity
		}
		if us.MaximumOverCapacity != nil {
			r.MaxOver = *us.MaximumOverCapacity
		}
	}
	cur := configVersion(a.def)
	checked := len(a.def.HealthChecks) > 0
	for _, t := range a.tasks {
		if !t.active() {
			continue
		}
		// Ready: running and, with a health check, healthy; a new task
		// also passed its readiness checks.
		ready := t.state == mesos.TaskRunning && (!checked || (t.healthy != nil && *t.healthy))
		if t.version == cur {
			ready = ready && (len(a.def.ReadinessChecks) == 0 || t.ready)
			r.New++
			if ready {
				r.NewReady++
			}
		} else {
			r.Old++
			if ready {
				r.OldReady++
			}
		}
	}
	return r
}

type taskState struct {
	id, agentID, host string
	// attrs are the agent's attributes (as constraints see them) at launch.
	attrs           map[string]string
	ports           []int
	state           mesos.TaskState
	staged, started time.Time
	version         string
	ips             []string
	healthy         *bool
	killing         bool
	// unconfirmed marks a task loaded from the Store that the master has
	// not reported on yet; it is reconciled explicitly until it is.
	unconfirmed bool
	// unreachableSince is when the task was first reported unreachable
	// (zero while it is not); inactive marks it replaced (see
	// unreachable.go).
	unreachableSince time.Time
	inactive         bool
	// ready latches once every readiness check passed; checks holds each
	// check's latest result and next due time (see readiness.go).
	ready  bool
	checks map[string]*readinessState
}

// active reports whether a task counts as an instance: launched, not
// being killed, not finished, not unreachable past its app's
// inactiveAfterSeconds.
func (t *taskState) active() bool {
	return !t.killing && !t.state.Terminal() && !t.inactive
}

// storedTask is the instance record kept in the Store from launch to end,
// as Marathon keeps its instances: after a restart the framework knows its
// tasks before the master tells it, so it never launches one twice.
type storedTask struct {
	ID      string `json:"id"`
	AppID   string `json:"app_id"`
	AgentID string `json:"agent_id"`
	Host    string `json:"host"`
	Ports   []int  `json:"ports,omitempty"`
	// Attrs are the agent's attributes, for constraints after a restart.
	Attrs   map[string]string `json:"attributes,omitempty"`
	Staged  time.Time         `json:"staged"`
	Version string            `json:"version"`
	// UnreachableSince is kept while the task is unreachable, so that
	// unreachableStrategy's clock survives a restart or failover.
	UnreachableSince *time.Time `json:"unreachable_since,omitempty"`
}

// recordOf is the instance record of task t of app appID. Caller holds mu.
func recordOf(appID string, t *taskState) storedTask {
	r := storedTask{ID: t.id, AppID: appID, AgentID: t.agentID, Host: t.host, Ports: t.ports, Attrs: t.attrs,
		Staged: t.staged, Version: t.version}
	if !t.unreachableSince.IsZero() {
		since := t.unreachableSince
		r.UnreachableSince = &since
	}
	return r
}

// Run serves the API and runs the framework until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	f, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	return f.Run(ctx)
}

// New loads the persisted apps and returns a framework ready to Run.
func New(ctx context.Context, cfg Config) (*Framework, error) {
	if cfg.Master == nil || cfg.Store == nil {
		return nil, errors.New("apps: config: Master and Store are required")
	}
	if cfg.FrameworkName == "" {
		cfg.FrameworkName = "marathon"
	}
	if cfg.LocalPortMin == 0 && cfg.LocalPortMax == 0 {
		cfg.LocalPortMin, cfg.LocalPortMax = 10000, 20000
	}
	if cfg.LocalPortMin <= 0 || cfg.LocalPortMax > 65535 || cfg.LocalPortMin > cfg.LocalPortMax {
		return nil, fmt.Errorf("apps: config: bad service port range %d-%d", cfg.LocalPortMin, cfg.LocalPortMax)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	f := &Framework{cfg: cfg, log: log.With("component", "apps"), apps: map[string]*appState{}, groups: map[string]groupRecord{},
		versions: map[string][]string{}, metrics: newMetrics(cfg.Registerer), probe: newProbeClient()}
	stored, err := cfg.Store.List(ctx, keyApps)
	if err != nil {
		return nil, fmt.Errorf("apps: load apps: %w", err)
	}
	for key, b := range stored {
		var app marathon.App
		if err := json.Unmarshal(b, &app); err != nil {
			f.log.Error("skipping unreadable app", "key", key, "err", err)
			continue
		}
		f.apps[app.ID] = &appState{def: app, tasks: map[string]*taskState{}}
	}
	if err := f.loadDeployments(ctx); err != nil {
		return nil, err
	}
	if err := f.loadVersions(ctx); err != nil {
		return nil, err
	}
	groups, err := cfg.Store.List(ctx, keyGroups)
	if err != nil {
		return nil, fmt.Errorf("apps: load groups: %w", err)
	}
	for key, b := range groups {
		var g groupRecord
		if err := json.Unmarshal(b, &g); err != nil {
			f.log.Error("skipping unreadable group", "key", key, "err", err)
			continue
		}
		f.groups[g.ID] = g
	}
	tasks, err := cfg.Store.List(ctx, keyTasks)
	if err != nil {
		return nil, fmt.Errorf("apps: load tasks: %w", err)
	}
	for key, b := range tasks {
		var st storedTask
		if err := json.Unmarshal(b, &st); err != nil {
			f.log.Error("skipping unreadable task record", "key", key, "err", err)
			continue
		}
		if a := f.apps[st.AppID]; a != nil {
			t := &taskState{id: st.ID, agentID: st.AgentID, host: st.Host, ports: st.Ports, attrs: st.Attrs,
				state: mesos.TaskStaging, staged: st.Staged, version: st.Version, unconfirmed: true}
			if st.UnreachableSince != nil {
				// Unreachable when last known: its strategy's clock runs on.
				t.state, t.unreachableSince = mesos.TaskUnreachable, *st.UnreachableSince
			}
			a.tasks[st.ID] = t
		}
	}
	if ids, err := cfg.Store.List(ctx, keyFramework); err == nil {
		f.frameworkID = string(ids[keyFramework])
	}
	if len(f.apps) > 0 {
		f.log.Info("loaded apps", "apps", len(f.apps), "framework_id", f.frameworkID)
	}
	f.wantOffers = true
	return f, nil
}

// Run serves until ctx is done.
func (f *Framework) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", f.cfg.Listen)
	if err != nil {
		return fmt.Errorf("apps: listen: %w", err)
	}
	srv := &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		// Streams (/v2/events) end with Run.
		BaseContext: func(net.Listener) context.Context { return ctx }}
	f.log.Info("Marathon API listening", "addr", ln.Addr().String())
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("apps: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		return nil
	})
	g.Go(func() error { f.subscribeLoop(gctx); return nil })
	g.Go(func() error { f.tickLoop(gctx); return nil })
	g.Go(func() error { f.readinessLoop(gctx); return nil })
	return g.Wait()
}

func (f *Framework) frameworkInfo() mesos.FrameworkInfo {
	name := "root"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	info := mesos.FrameworkInfo{User: name, Name: f.cfg.FrameworkName, FailoverTimeout: 7 * 24 * 3600, Checkpoint: true,
		Roles: []string{"*"}, Hostname: f.cfg.Hostname, WebUIURL: "http://" + f.cfg.Listen,
		Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityTaskKillingState}, {Type: mesos.CapabilityPartitionAware}, {Type: mesos.CapabilityMultiRole}}}
	f.mu.Lock()
	if f.frameworkID != "" {
		info.ID = mesos.NewID(f.frameworkID)
	}
	f.mu.Unlock()
	return info
}

// subscribeLoop keeps a subscription to the master.
func (f *Framework) subscribeLoop(ctx context.Context) {
	reconnect.Loop(ctx, func(ctx context.Context) error {
		err := f.cfg.Master.Subscribe(ctx, f.frameworkInfo(), func(ev mesos.Event) { f.handle(ctx, ev) })
		f.mu.Lock()
		f.connected = false
		f.mu.Unlock()
		return err
	}, func(err error, wait time.Duration) {
		f.log.Warn("master subscription lost", "err", err, "retry_in", wait)
	})
}

// tickLoop revives offers when demand is waiting (new apps, expired backoffs).
func (f *Framework) tickLoop(ctx context.Context) {
	t := time.NewTicker(reviveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		revive := f.connected && (f.wantOffers || len(f.needs(time.Now())) > 0)
		// With nothing to launch, offers are suppressed (as Marathon
		// does), so a big cluster does not flood the framework with
		// offers it can only decline.
		suppress := f.connected && !revive && !f.suppressed
		f.wantOffers = false
		if revive {
			f.suppressed = false
		} else if suppress {
			f.suppressed = true
		}
		f.mu.Unlock()
		if revive {
			f.call(ctx, mesos.Call{Type: mesos.CallRevive})
		} else if suppress {
			f.call(ctx, mesos.Call{Type: mesos.CallSuppress})
		}
		f.sweepUnreachable(ctx)
		f.rollStep(ctx)
		f.scaleDown(ctx)
		f.saveDeployments(ctx)
		// Mesos' reconciliation algorithm: ask again about tasks the master
		// has not answered for (their agent may still be coming back).
		if pending := f.reconcileList(true); len(pending) > 0 && f.isConnected() {
			f.call(ctx, mesos.Call{Type: mesos.CallReconcile, Reconcile: &mesos.Reconcile{Tasks: pending}})
		}
	}
}

func (f *Framework) isConnected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *Framework) call(ctx context.Context, c mesos.Call) {
	if err := f.cfg.Master.Call(ctx, c); err != nil && ctx.Err() == nil {
		f.log.Warn("scheduler call failed", "type", c.Type, "err", err)
	}
}

// handle processes one scheduler event.
func (f *Framework) handle(ctx context.Context, ev mesos.Event) {
	switch ev.Type {
	case mesos.EventSubscribed:
		id := ev.Subscribed.FrameworkID.Value
		f.mu.Lock()
		f.frameworkID, f.connected, f.wantOffers, f.suppressed = id, true, true, false
		f.mu.Unlock()
		if err := f.cfg.Store.Put(ctx, keyFramework, []byte(id)); err != nil {
			f.log.Error("could not persist framework ID", "err", err)
		}
		f.log.Info("subscribed", "framework_id", id)
		// Explicit reconciliation of the tasks we know, then implicit for
		// the ones we do not.
		if known := f.knownTasks(); len(known) > 0 {
			f.call(ctx, mesos.Call{Type: mesos.CallReconcile, Reconcile: &mesos.Reconcile{Tasks: known}})
		}
		f.call(ctx, mesos.Call{Type: mesos.CallReconcile, Reconcile: &mesos.Reconcile{}})
		f.call(ctx, mesos.Call{Type: mesos.CallRevive})
	case mesos.EventOffers:
		// Offers nothing fits on are declined together: one call for a
		// whole cycle's offers, not one per agent.
		var declined []mesos.ID
		for _, o := range ev.Offers.Offers {
			if !f.offer(ctx, o) {
				declined = append(declined, o.ID)
			}
		}
		if len(declined) > 0 {
			refuse := refuseSeconds
			f.metrics.declined.Add(float64(len(declined)))
			f.call(ctx, mesos.Call{Type: mesos.CallDecline, Decline: &mesos.Decline{OfferIDs: declined, Filters: &mesos.Filters{RefuseSeconds: &refuse}}})
		}
	case mesos.EventUpdate:
		f.update(ctx, ev.Update.Status)
	case mesos.EventError:
		f.log.Error("master reported an error", "message", ev.Error.Message)
	}
}

// knownTasks lists the tasks of every app for explicit reconciliation.
func (f *Framework) knownTasks() []mesos.ReconcileTask { return f.reconcileList(false) }

// reconcileList lists tasks to reconcile: all of them, or only those the
// master has not confirmed.
func (f *Framework) reconcileList(unconfirmedOnly bool) []mesos.ReconcileTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []mesos.ReconcileTask
	for _, a := range f.apps {
		for _, t := range a.tasks {
			if !unconfirmedOnly || t.unconfirmed {
				out = append(out, mesos.ReconcileTask{TaskID: mesos.ID{Value: t.id}, AgentID: mesos.NewID(t.agentID)})
			}
		}
	}
	return out
}

// needs lists apps wanting more instances now, in ID order. Caller holds mu.
func (f *Framework) needs(now time.Time) []need {
	var out []need
	for _, a := range f.apps {
		if now.Before(a.delayUntil) || !f.depsReady(a.def) {
			continue
		}
		var n int
		if r := a.rollout(); r.Old > 0 && a.halted {
			n = *a.def.Instances - r.New - r.Old // only replace what is lost
		} else if r.Old > 0 {
			n, _ = r.step()
		} else {
			n = *a.def.Instances - r.New
		}
		if n > 0 {
			def := a.def
			var placed []agentPlace
			if len(def.Constraints) > 0 {
				for _, t := range a.tasks {
					if t.active() {
						placed = append(placed, agentPlace{Host: t.host, Attrs: t.attrs})
					}
				}
			}
			out = append(out, need{App: &def, Count: n, Placed: placed})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App.ID < out[j].App.ID })
	return out
}

// offer launches what fits on o and reports whether it used it; the
// caller declines the offers it did not.
func (f *Framework) offer(ctx context.Context, o mesos.Offer) bool {
	now := time.Now()
	f.mu.Lock()
	launches, results := place(o, f.needs(now), newTaskID)
	for _, r := range results {
		if a := f.apps[r.AppID]; a != nil {
			a.offers.record(r, now)
		}
		if r.Placed == 0 && r.Reason != "" {
			f.metrics.unused.WithLabelValues(r.Reason).Inc()
		}
	}
	var records []storedTask
	for _, l := range launches {
		a := f.apps[l.AppID]
		a.tasks[l.Task.TaskID.Value] = &taskState{id: l.Task.TaskID.Value, agentID: o.AgentID.Value, host: o.Hostname,
			attrs: l.Place.Attrs, ports: l.HostPorts, state: mesos.TaskStaging, staged: now, version: configVersion(a.def)}
		records = append(records, storedTask{ID: l.Task.TaskID.Value, AppID: l.AppID, AgentID: o.AgentID.Value,
			Host: o.Hostname, Ports: l.HostPorts, Attrs: l.Place.Attrs, Staged: now, Version: configVersion(a.def)})
	}
	f.mu.Unlock()
	// The records are durable before the launch is sent: in one write
	// when the store can (an offer may carry hundreds of launches).
	f.persistRecords(ctx, records)
	if len(launches) == 0 {
		return false
	}
	var infos []mesos.TaskInfo
	for i, l := range launches {
		infos = append(infos, l.Task)
		if i < 10 {
			f.log.Info("launching task", "app", l.AppID, "task_id", l.Task.TaskID.Value, "agent", o.Hostname, "ports", l.HostPorts)
		}
	}
	if len(launches) > 10 {
		f.log.Info("launching more tasks on the same offer", "agent", o.Hostname, "tasks", len(launches)-10)
	}
	f.metrics.launches.Add(float64(len(infos)))
	refuse := 0.0
	f.call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o.ID},
		Operations: []mesos.Operation{{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: infos}}},
		Filters:    &mesos.Filters{RefuseSeconds: &refuse}}})
	return true
}

// instanceCondition is Marathon's name for a task state in
// instance_changed_event.
func instanceCondition(s mesos.TaskState) string {
	switch s {
	case mesos.TaskStaging:
		return "Staging"
	case mesos.TaskStarting:
		return "Starting"
	case mesos.TaskRunning:
		return "Running"
	case mesos.TaskKilling:
		return "Killing"
	case mesos.TaskKilled:
		return "Killed"
	case mesos.TaskFinished:
		return "Finished"
	case mesos.TaskFailed:
		return "Failed"
	case mesos.TaskError:
		return "Error"
	case mesos.TaskUnreachable:
		return "Unreachable"
	case mesos.TaskGone:
		return "Gone"
	case mesos.TaskDropped:
		return "Dropped"
	}
	return "Unknown"
}

// instanceGoal is Marathon's goal of an instance: Running, or Stopped
// once it is being killed or has ended.
func instanceGoal(t *taskState, gone bool) string {
	if t.killing || gone {
		return "Stopped"
	}
	return "Running"
}

// batchPutter is a Store that writes many keys at once (coord.Bolt).
type batchPutter interface {
	PutAll(ctx context.Context, kv map[string][]byte) error
}

// persistRecords stores launch records, failures logged: the launch goes
// ahead (reconciliation finds the task either way).
func (f *Framework) persistRecords(ctx context.Context, records []storedTask) {
	if bp, ok := f.cfg.Store.(batchPutter); ok && len(records) > 1 {
		kv := make(map[string][]byte, len(records))
		for _, r := range records {
			kv[keyTasks+r.ID], _ = json.Marshal(r)
		}
		if err := bp.PutAll(ctx, kv); err != nil {
			f.log.Error("could not persist task records; launching anyway", "tasks", len(records), "err", err)
		}
		return
	}
	for _, r := range records {
		b, _ := json.Marshal(r)
		if err := f.cfg.Store.Put(ctx, keyTasks+r.ID, b); err != nil {
			f.log.Error("could not persist task record; launching anyway", "task_id", r.ID, "err", err)
		}
	}
}

// update applies a task status, acknowledges it, and kills tasks nobody wants.
func (f *Framework) update(ctx context.Context, st mesos.TaskStatus) {
	id := st.TaskID.Value
	var kill bool
	f.mu.Lock()
	appID, _ := appIDOfTask(id)
	a := f.apps[appID]
	var t *taskState
	wasActive := false
	if a != nil {
		t = a.tasks[id]
		wasActive = t != nil && t.active()
		if t == nil && !st.State.Terminal() && st.AgentID != nil && !a.expunged[id] {
			// A task we launched before a restart: adopt it.
			t = &taskState{id: id, agentID: st.AgentID.Value, state: st.State, staged: time.Now(), version: configVersion(a.def)}
			a.tasks[id] = t
			f.log.Info("adopted running task", "app", appID, "task_id", id)
		}
	}
	gone := st.State.Terminal() || st.State == mesos.TaskUnknown
	var prevHealthy *bool
	var rewrite *storedTask // the record, when its unreachable time changed
	if t != nil {
		prevHealthy = t.healthy
	}
	switch {
	case t == nil:
		// Not ours (its app is gone, or it was expunged): it must not run.
		kill = !gone
		if gone && a != nil {
			delete(a.expunged, id) // over: nothing left to kill
		}
	case gone:
		delete(a.tasks, id)
		if !t.killing {
			f.backoff(a, t, st)
		}
		f.wantOffers = true
	default:
		t.unconfirmed = false
		t.state = st.State
		if st.State == mesos.TaskUnreachable {
			if t.unreachableSince.IsZero() {
				t.unreachableSince = f.cfg.Clock()
				r := recordOf(appID, t)
				rewrite = &r
				p := policyOf(&a.def)
				f.log.Info("task unreachable", "app", appID, "task_id", id, "replace_disabled", p.disabled, "inactive_after", p.inactive, "expunge_after", p.purge)
			}
		} else if !t.unreachableSince.IsZero() {
			// Back from a partition: it counts again, and scaleDown kills
			// the surplus by killSelection.
			f.log.Info("unreachable task is back", "app", appID, "task_id", id, "state", st.State, "replaced", t.inactive)
			t.unreachableSince, t.inactive = time.Time{}, false
			r := recordOf(appID, t)
			rewrite = &r
			f.wantOffers = true
			f.metrics.unreachable.WithLabelValues("back").Inc()
		}
		if st.State == mesos.TaskRunning && t.started.IsZero() {
			t.started = time.Now()
			a.delay, a.delayUntil = 0, time.Time{}
		}
		if cs := st.ContainerStatus; cs != nil {
			var ips []string
			for _, ni := range cs.NetworkInfos {
				for _, ip := range ni.IPAddresses {
					ips = append(ips, ip.IPAddress)
				}
			}
			if len(ips) > 0 {
				t.ips = ips
			}
		}
		if st.Healthy != nil {
			h := *st.Healthy
			t.healthy = &h
		}
		// A task we already asked to kill is asked again (the kill may have
		// been lost with a master or agent restart).
		kill = t.killing
	}
	f.metrics.updates.WithLabelValues(string(st.State)).Inc()
	if t != nil {
		ev := map[string]any{"slaveId": t.agentID, "taskId": id, "taskStatus": string(st.State), "message": st.Message,
			"appId": appID, "host": t.host, "ports": t.ports, "version": t.version}
		f.events.publish("status_update_event", ev)
		ts := time.Now().UTC().Format(timeFormat)
		f.events.publish("instance_changed_event", map[string]any{"instanceId": id, "condition": instanceCondition(st.State),
			"runSpecId": appID, "agentId": t.agentID, "host": t.host, "runSpecVersion": t.version, "timestamp": ts,
			"goal": instanceGoal(t, gone)})
		if st.Healthy != nil && (prevHealthy == nil || *prevHealthy != *st.Healthy) {
			f.events.publish("health_status_changed_event", map[string]any{"appId": appID, "taskId": id,
				"instanceId": id, "version": t.version, "alive": *st.Healthy, "timestamp": ts})
			if !*st.Healthy && a != nil && len(a.def.HealthChecks) > 0 {
				f.events.publish("failed_health_check_event", map[string]any{"appId": appID, "taskId": id,
					"instanceId": id, "healthCheck": a.def.HealthChecks[0], "timestamp": ts})
			}
		}
	}
	f.mu.Unlock()
	if gone {
		if err := f.cfg.Store.Delete(ctx, keyTasks+id); err != nil {
			f.log.Error("could not delete task record", "task_id", id, "err", err)
		}
	} else if rewrite != nil {
		b, _ := json.Marshal(rewrite)
		if err := f.cfg.Store.Put(ctx, keyTasks+id, b); err != nil {
			f.log.Error("could not update task record", "task_id", id, "err", err)
		}
	}
	if len(st.UUID) > 0 && st.AgentID != nil {
		f.call(ctx, mesos.Call{Type: mesos.CallAcknowledge, Acknowledge: &mesos.Acknowledge{AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID}})
	}
	if kill {
		f.call(ctx, mesos.Call{Type: mesos.CallKill, Kill: &mesos.Kill{TaskID: st.TaskID, AgentID: st.AgentID}})
	}
	if st.State == mesos.TaskUnreachable {
		f.sweepUnreachable(ctx) // inactiveAfterSeconds 0 replaces at once
	}
	// Only this task's app can have changed, and only in two ways that
	// need work now: a deployment waiting on its tasks, or one more active
	// instance (adopted, back from unreachable) that may be surplus.
	// Stepping every app on every update made a burst of n launches cost
	// O(n^2); anything else is picked up by tickLoop's pass.
	f.mu.Lock()
	deploying := a != nil && a.deployment != ""
	becameActive := a != nil && !wasActive && a.tasks[id] != nil && a.tasks[id].active()
	f.mu.Unlock()
	if deploying {
		f.rollStepOf(ctx, appID)
	}
	if becameActive {
		f.scaleDownOf(ctx, appID)
	}
}

// backoff records a failure and delays the app's next launch:
// backoffSeconds * backoffFactor^n, capped at maxLaunchDelaySeconds.
func (f *Framework) backoff(a *appState, t *taskState, st mesos.TaskStatus) {
	base := time.Duration(*a.def.BackoffSeconds * float64(time.Second))
	if a.delay == 0 {
		a.delay = base
	} else {
		a.delay = time.Duration(math.Min(float64(a.delay)**a.def.BackoffFactor, *a.def.MaxLaunchDelaySeconds*float64(time.Second)))
	}
	a.delayUntil = time.Now().Add(a.delay)
	a.lastFailure = &marathon.TaskFailure{AppID: a.def.ID, Host: t.host, Message: st.Message, State: string(st.State),
		TaskID: t.id, Timestamp: time.Now().UTC().Format(timeFormat), Version: t.version}
	f.log.Info("task ended; relaunching after backoff", "app", a.def.ID, "task_id", t.id, "state", st.State, "message", st.Message, "delay", a.delay)
}

// scaleDown kills surplus instances (youngest first by default).
func (f *Framework) scaleDown(ctx context.Context) { f.scaleDownOf(ctx, "") }

// scaleDownOf is scaleDown for one app ("" for all).
func (f *Framework) scaleDownOf(ctx context.Context, only string) {
	var kills []mesos.Kill
	f.mu.Lock()
	for id, a := range f.apps {
		if only != "" && id != only {
			continue
		}
		if a.rollout().Old > 0 {
			continue // a rolling upgrade decides what goes
		}
		var active []*taskState
		for _, t := range a.tasks {
			if t.active() {
				active = append(active, t)
			}
		}
		surplus := len(active) - *a.def.Instances
		if surplus <= 0 {
			continue
		}
		// As Marathon: unreachable instances go first, then those not yet
		// running, then killSelection decides.
		rank := func(t *taskState) int {
			switch t.state {
			case mesos.TaskUnreachable:
				return 0
			case mesos.TaskRunning:
				return 2
			}
			return 1
		}
		sort.Slice(active, func(i, j int) bool {
			if ri, rj := rank(active[i]), rank(active[j]); ri != rj {
				return ri < rj
			}
			if a.def.KillSelection == "OLDEST_FIRST" {
				return active[i].staged.Before(active[j].staged)
			}
			return active[i].staged.After(active[j].staged)
		})
		for _, t := range active[:surplus] {
			t.killing = true
			kills = append(kills, mesos.Kill{TaskID: mesos.ID{Value: t.id}, AgentID: mesos.NewID(t.agentID)})
		}
	}
	f.mu.Unlock()
	for _, k := range kills {
		k := k
		f.log.Info("killing surplus task", "task_id", k.TaskID.Value)
		f.call(ctx, mesos.Call{Type: mesos.CallKill, Kill: &k})
	}
}

// rollStep advances every rolling upgrade: it kills the old tasks the plan
// lets go (those not ready first, then the oldest) and ends deployments
// that are done. Launches happen on offers (needs).
func (f *Framework) rollStep(ctx context.Context) { f.rollStepOf(ctx, "") }

// rollStepOf is rollStep for one app ("" for all).
func (f *Framework) rollStepOf(ctx context.Context, only string) {
	var kills []*taskState
	f.mu.Lock()
	for id, a := range f.apps {
		if only != "" && id != only {
			continue
		}
		r := a.rollout()
		if a.halted {
			continue
		}
		if r.Old == 0 {
			if a.deployment != "" && r.NewReady >= r.Instances && !a.oldAlive() {
				f.log.Info("deployment finished", "app", id, "deployment", a.deployment, "took", time.Since(a.deployedAt).Round(time.Millisecond))
				plan := map[string]any{"id": a.deployment, "version": a.def.Version}
				f.events.publish("deployment_step_success", map[string]any{"plan": plan,
					"currentStep": map[string]any{"actions": []map[string]any{{"action": "RestartApplication", "app": id}}}})
				f.events.publish("deployment_success", map[string]any{"id": a.deployment, "plan": plan})
				a.deployment, a.prevDef = "", nil
			}
			continue
		}
		_, n := r.step()
		if n == 0 {
			continue
		}
		cur := configVersion(a.def)
		var old []*taskState
		for _, t := range a.tasks {
			if t.active() && t.version != cur {
				old = append(old, t)
			}
		}
		sort.Slice(old, func(i, j int) bool {
			ri, rj := old[i].state == mesos.TaskRunning, old[j].state == mesos.TaskRunning
			if ri != rj {
				return !ri
			}
			return old[i].staged.Before(old[j].staged)
		})
		for _, t := range old[:min(n, len(old))] {
			t.killing = true
			kills = append(kills, t)
		}
		f.wantOffers = true
	}
	f.mu.Unlock()
	f.killTasks(ctx, kills)
}

// oldAlive reports whether a task of an older version is still there
// (being killed): a deployment ends, as Marathon's does, once every old
// task is gone. Caller holds mu.
func (a *appState) oldAlive() bool {
	cur := configVersion(a.def)
	for _, t := range a.tasks {
		if t.version != cur && !t.state.Terminal() && !t.inactive {
			return true
		}
	}
	return false
}

// killTasks marks tasks killing and asks the master to kill them.
func (f *Framework) killTasks(ctx context.Context, tasks []*taskState) {
	for _, t := range tasks {
		f.call(ctx, mesos.Call{Type: mesos.CallKill, Kill: &mesos.Kill{TaskID: mesos.ID{Value: t.id}, AgentID: mesos.NewID(t.agentID)}})
	}
}

const timeFormat = "2006-01-02T15:04:05.000Z"

func newTaskID(appID string) string { return taskIDPrefix(appID) + "." + newUUID() }

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return strings.Join([]string{h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]}, "-")
}

// depsReady reports whether every app app depends on (directly, through a
// group it depends on, or through a group it is in) exists and has all its
// instances of its current version running, and healthy when it has
// health checks. A dependency that names nothing is not ready: the app
// waits for it to be created. Caller holds mu.
func (f *Framework) depsReady(app marathon.App) bool {
	for _, dep := range dependencyIDs(app, f.groups) {
		found := false
		for id, b := range f.apps {
			if !under(id, dep) || under(app.ID, dep) {
				continue
			}
			found = true
			r := b.rollout()
			ready := r.Old == 0 && r.NewReady >= r.Instances
			// A deployment stopped where it was counts both versions.
			ready = ready || (b.halted && r.NewReady+r.OldReady >= r.Instances)
			if !ready {
				return false
			}
		}
		if !found {
			return false
		}
	}
	return true
}
