package discovery

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/reconnect"
	"github.com/keelhq/keel/mesosclient"
	"github.com/keelhq/keel/snapshot"
)

// Config configures discovery.
type Config struct {
	// Master is the master's base URL, e.g. "http://127.0.0.1:5050".
	Master string
	// Leader, when set, is asked for the leading master's URL at every
	// (re)connect instead of using Master (an HA set: coord.Detector).
	Leader mesosclient.Resolver
	// Masters, when set, lists every master of an HA set (leader first)
	// for the snapshot's Masters (master.mesos, masterN.mesos); call
	// Touch when it changes. Without it only the leader is listed.
	Masters func() []mesos.MasterInfo
	// Idle is how long the stream may stay silent (heartbeats included)
	// before it is considered broken (default 45s: three Mesos heartbeats).
	Idle time.Duration
	// StateFile, when set, is where the last state is saved (at most once a
	// second) and loaded from at start, so a gateway restarted while no
	// master is reachable serves what it knew.
	StateFile  string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Discovery follows the master and publishes snapshots.
type Discovery struct {
	cfg     Config
	log     *slog.Logger
	op      *mesosclient.Operator
	current atomic.Pointer[snapshot.Snapshot]
	subs    []func(*snapshot.Snapshot)
	dirty   chan struct{}
	lastMsg atomic.Int64 // unix nanos of the last record from the master

	mu    sync.Mutex // guards model
	model *model

	events    *prometheus.CounterVec
	resyncs   prometheus.Counter
	connected prometheus.Gauge
	gen       prometheus.Gauge
}

// New returns a Discovery for cfg. Register consumers with OnUpdate before
// calling Run.
func New(cfg Config) *Discovery {
	if cfg.Idle <= 0 {
		cfg.Idle = 45 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	leader := cfg.Leader
	if leader == nil {
		leader = mesosclient.Static(cfg.Master)
	}
	d := &Discovery{
		cfg:   cfg,
		log:   log.With("component", "discovery"),
		op:    mesosclient.NewOperatorFor(leader),
		dirty: make(chan struct{}, 1),
		model: newModel(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "gateway", Name: "events_total",
			Help: "Operator events received from the master, by type."}, []string{"type"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "gateway", Name: "resyncs_total",
			Help: "Full state resynchronisations (one per stream connect)."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "gateway", Name: "leader_connected",
			Help: "1 while the event stream to the leading master is up."}),
		gen: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "gateway", Name: "snapshot_generation",
			Help: "Generation of the published snapshot."}),
	}
	d.current.Store(snapshot.Empty())
	if cfg.Registerer != nil {
		age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "gateway", Name: "snapshot_age_seconds",
			Help: "Seconds since the last record (event or heartbeat) from the master; grows while the master is unreachable."},
			func() float64 {
				last := d.lastMsg.Load()
				if last == 0 {
					return 0
				}
				return time.Since(time.Unix(0, last)).Seconds()
			})
		cfg.Registerer.MustRegister(d.events, d.resyncs, d.connected, d.gen, age)
	}
	return d
}

// OnUpdate registers fn to receive every published snapshot (called from
// one goroutine, in order). Call it before Run.
func (d *Discovery) OnUpdate(fn func(*snapshot.Snapshot)) { d.subs = append(d.subs, fn) }

// Current returns the latest snapshot; never nil.
func (d *Discovery) Current() *snapshot.Snapshot { return d.current.Load() }

// Run follows the master until ctx is done and returns nil.
func (d *Discovery) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if d.cfg.StateFile != "" {
		ok, err := d.load(d.cfg.StateFile)
		if err != nil {
			d.log.Warn("ignoring unreadable saved state", "err", err)
		} else if ok {
			d.log.Info("serving saved state until the master answers", "file", d.cfg.StateFile)
			d.markDirty()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.persistLoop(ctx, d.cfg.StateFile, time.Second)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.publishLoop(ctx)
	}()
	reconnect.Loop(ctx, func(ctx context.Context) error {
		err := d.op.Subscribe(ctx, d.cfg.Idle, d.handle)
		d.connected.Set(0)
		return err
	}, func(err error, wait time.Duration) {
		d.log.Warn("master event stream lost; serving last snapshot", "err", err, "retry_in", wait)
	})
	return nil
}

// handle applies one event to the model and marks it dirty.
func (d *Discovery) handle(ev mesos.OperatorEvent) {
	d.lastMsg.Store(time.Now().UnixNano())
	d.events.WithLabelValues(ev.Type).Inc()
	if ev.Type == mesos.OpEventHeartbeat {
		return
	}
	d.mu.Lock()
	changed := d.model.apply(ev)
	d.mu.Unlock()
	if ev.Type == mesos.OpEventSubscribed {
		d.connected.Set(1)
		d.resyncs.Inc()
		master := ""
		if mi := ev.Subscribed.MasterInfo; mi != nil && mi.Address != nil {
			master = mi.Address.Hostname + ":" + strconv.Itoa(mi.Address.Port)
		}
		d.log.Info("subscribed to master events", "master", master)
	}
	if changed {
		d.markDirty()
	}
}

// Touch asks for a new snapshot though no event came (the set of masters
// changed).
func (d *Discovery) Touch() { d.markDirty() }

func (d *Discovery) markDirty() {
	select {
	case d.dirty <- struct{}{}:
	default:
	}
}

// publishLoop builds and publishes a snapshot whenever the model changed.
func (d *Discovery) publishLoop(ctx context.Context) {
	var gen uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.dirty:
		}
		d.mu.Lock()
		gen++
		snap := d.model.build(gen)
		d.mu.Unlock()
		if d.cfg.Masters != nil {
			if all := d.cfg.Masters(); len(all) > 0 {
				snap.Masters = snap.Masters[:0]
				for i := range all {
					snap.Masters = append(snap.Masters, masterOf(&all[i]))
				}
			}
		}
		d.current.Store(snap)
		d.gen.Set(float64(gen))
		for _, fn := range d.subs {
			fn(snap)
		}
	}
}
