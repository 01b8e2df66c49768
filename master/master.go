package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/api/mesos"
)

// Store is the durable key/value state the master needs (coord.Bolt
// satisfies it).
type Store interface {
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) (map[string][]byte, error)
}

// Config configures a master.
type Config struct {
	// Listen is the HTTP address, e.g. "127.0.0.1:5050".
	Listen string
	// Hostname and IP are advertised to clients (MasterInfo, leader.mesos).
	// IP defaults to the listener's IP, Hostname to IP.
	Hostname string
	IP       string
	// Store holds the registry of a standalone master (required without
	// Elector).
	Store Store
	// Elector, when set, makes this master one of an HA set: it serves
	// only while it leads, each term on the store the term brings, and
	// redirects to the leader otherwise.
	Elector Elector
	// AllocationInterval is the batch allocation period (default 1s).
	AllocationInterval time.Duration
	// HeartbeatInterval is the period of HEARTBEAT events on every stream
	// (default 15s, as Mesos).
	HeartbeatInterval time.Duration
	// AgentReregisterTimeout is how long a disconnected agent's tasks are
	// kept before they are marked unreachable (default 75s, Mesos' 15s ping
	// timeout times 5).
	AgentReregisterTimeout time.Duration
	// AgentPingTimeout is how long the master waits for an agent's PONG
	// (default 15s), and MaxAgentPingTimeouts how many it may miss in a
	// row (default 5) before the agent is taken for partitioned: its tasks
	// become unreachable (or lost) and it leaves the pool. The same budget
	// applies to an agent whose stream broke.
	AgentPingTimeout     time.Duration
	MaxAgentPingTimeouts int
	// OfferTimeout, when positive, rescinds offers a framework keeps
	// longer (Mesos' --offer_timeout; default none).
	OfferTimeout time.Duration
	// Roles, when set, are the only roles frameworks may use besides "*"
	// (Mesos' --roles whitelist). Role names are always validated.
	Roles []string
	// Weights of roles for the allocator (Mesos' --weights); default 1.
	Weights map[string]float64
	// Version is reported by /version and GET_VERSION.
	Version string
	// Registerer and Gatherer are for metrics; nil disables them.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// OnTerm, when set, runs for every term this master leads, with a
	// context that ends with the term and the term's store: the built-in
	// apps framework runs here, so only the leader schedules. An error
	// while the term lasts ends Run with that error. The next campaign
	// waits for OnTerm to return.
	OnTerm func(ctx context.Context, store Store) error
	// Extra, when set, serves every path the master does not (the web UI).
	Extra  http.Handler
	Logger *slog.Logger
	// OnListen, when set, is called with the bound address before serving.
	OnListen func(addr net.Addr)
}

// Master is a running master. Create it with New and start it with Run.
type Master struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	info    mesos.MasterInfo
	// idBase prefixes the IDs this term hands out.
	idBase string
	// term is the leadership this registry serves under.
	term  Term
	start time.Time

	muxOnce sync.Once
	mux     http.Handler

	// trigger asks the allocation loop for an early cycle.
	trigger chan struct{}

	mu         sync.Mutex
	agents     map[string]*agentRec
	frameworks map[string]*fwRec
	tasks      map[string]*taskRec     // by task ID: add and remove with putTask and dropTask, change a State with setTaskState
	held       holdings                // what the non-terminal tasks hold, by framework and role
	byState    map[mesos.TaskState]int // how many tasks are in each state (none: absent), kept with tasks so a scrape walks none
	offers     map[string]*offerRec
	completed  []mesos.Task // ring of finished tasks, newest last
	filters    map[filterKey]time.Time
	quota      map[string]mesos.QuotaConfig // by role
	opSubs     map[*conn]struct{}
	timers     map[string]*time.Timer
	closing    bool
	seq        int
}

type agentRec struct {
	// recovered is set for an agent loaded from the registry at start that
	// has not re-registered yet: its tasks are unknown, not gone.
	recovered bool
	info      mesos.AgentInfo
	ip        string
	pid       string
	version   string
	// total, used (by the agent's live tasks) and offered change only
	// through setTotal, setUsed and setOffered, which drop the cached
	// available().
	total   mesos.Resources
	used    mesos.Resources
	offered mesos.Resources
	// avail is total - used - offered, current while availOK.
	avail      mesos.Resources
	availOK    bool
	conn       *conn
	streamID   string
	registered time.Time
	// missedPings counts PINGs sent on conn that no PONG answered yet.
	missedPings int
}

// available is what neither tasks nor offers hold of the agent: total -
// used - offered, computed again only after one of them changed (every
// allocation cycle asks for it of every agent). The result is shared:
// callers must not change it in place. Caller holds mu.
func (a *agentRec) available() mesos.Resources {
	if !a.availOK {
		a.avail, a.availOK = a.total.Minus(a.used).Minus(a.offered), true
	}
	return a.avail
}

// setTotal sets the agent's resources. Caller holds mu.
func (a *agentRec) setTotal(rs mesos.Resources) { a.total, a.availOK = rs, false }

// setUsed sets what the agent's live tasks use. Caller holds mu.
func (a *agentRec) setUsed(rs mesos.Resources) { a.used, a.availOK = rs, false }

// setOffered sets what outstanding offers hold of the agent. Caller
// holds mu.
func (a *agentRec) setOffered(rs mesos.Resources) { a.offered, a.availOK = rs, false }

type fwRec struct {
	info       mesos.FrameworkInfo
	conn       *conn
	streamID   string
	suppressed bool
	// suppressedRoles are roles SUPPRESS named (all roles: suppressed).
	suppressedRoles map[string]bool
	allocated       mesos.Resources
	offered         mesos.Resources
	registered      time.Time
	recovered       bool
}

type taskRec struct {
	// role is the role of the offer the task was launched from.
	role string
	task mesos.Task
	// framework info as at launch, needed by the agent (capabilities).
	unacked map[string]mesos.TaskStatus // status updates not yet acked by the framework, by uuid
}

type offerRec struct {
	offer   mesos.Offer
	role    string
	created time.Time
}

// filterKey is a DECLINE filter: framework, agent and the role of the
// declined offer.
type filterKey struct{ framework, agent, role string }

const (
	keyFrameworks = "master/frameworks/"
	keyAgents     = "master/agents/"
	maxCompleted  = 1000
	maxStatuses   = 10
	maxBody       = 4 << 20
)

// withDefaults validates cfg and fills in its defaults.
func withDefaults(cfg Config) (Config, error) {
	if cfg.Store == nil && cfg.Elector == nil {
		return cfg, errors.New("master: config: Store (standalone) or Elector (HA) is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:5050"
	}
	if cfg.AllocationInterval <= 0 {
		cfg.AllocationInterval = time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 15 * time.Second
	}
	if cfg.AgentReregisterTimeout <= 0 {
		cfg.AgentReregisterTimeout = 75 * time.Second
	}
	if cfg.AgentPingTimeout <= 0 {
		cfg.AgentPingTimeout = 15 * time.Second
	}
	if cfg.MaxAgentPingTimeouts <= 0 {
		cfg.MaxAgentPingTimeouts = 5
	}
	for _, r := range cfg.Roles {
		if err := allocator.ValidRole(r); err != nil {
			return cfg, fmt.Errorf("master: config: roles: %w", err)
		}
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// newTerm returns the registry of one leadership term: empty until
// recover loads it from store. IDs it hands out (frameworks, agents,
// offers) start with a prefix of its own, so two terms of one process
// never reuse an ID.
func newTerm(cfg Config, info mesos.MasterInfo, store Store, mt *metrics, log *slog.Logger) *Master {
	cfg.Store = store
	return &Master{
		cfg:        cfg,
		log:        log,
		metrics:    mt,
		info:       info,
		idBase:     newUUID(),
		start:      time.Now(),
		trigger:    make(chan struct{}, 1),
		agents:     map[string]*agentRec{},
		frameworks: map[string]*fwRec{},
		tasks:      map[string]*taskRec{},
		held:       holdings{},
		byState:    map[mesos.TaskState]int{},
		offers:     map[string]*offerRec{},
		filters:    map[filterKey]time.Time{},
		quota:      map[string]mesos.QuotaConfig{},
		opSubs:     map[*conn]struct{}{},
		timers:     map[string]*time.Timer{},
	}
}

// masterInfo is what this process advertises (MasterInfo, the election
// node, leader.mesos), fixed for the life of the process.
func masterInfo(cfg Config, addr *net.TCPAddr) mesos.MasterInfo {
	ip := cfg.IP
	if ip == "" {
		ip = addr.IP.String()
		if addr.IP.IsUnspecified() {
			ip = "127.0.0.1"
		}
	}
	host := cfg.Hostname
	if host == "" {
		host = ip
	}
	return mesos.MasterInfo{
		ID:       newUUID(),
		IP:       mesos.IPv4ToUint32(net.ParseIP(ip)),
		Port:     addr.Port,
		PID:      "master@" + net.JoinHostPort(ip, strconv.Itoa(addr.Port)),
		Hostname: host,
		Version:  cfg.Version,
		Address:  &mesos.Address{Hostname: host, IP: ip, Port: addr.Port},
	}
}

// shutdown closes every stream and stops every timer.
func (m *Master) shutdown() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closing = true
	for _, t := range m.timers {
		t.Stop()
	}
	for _, a := range m.agents {
		a.conn.close()
	}
	for _, f := range m.frameworks {
		f.conn.close()
	}
	for c := range m.opSubs {
		c.close()
	}
}

// recover loads framework and agent registrations from the store. Their
// streams are disconnected until they re-subscribe; frameworks keep their
// IDs and agents may re-register with theirs.
func (m *Master) recover(ctx context.Context) error {
	fws, err := m.cfg.Store.List(ctx, keyFrameworks)
	if err != nil {
		return fmt.Errorf("master: recover frameworks: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, v := range fws {
		var info mesos.FrameworkInfo
		if err := json.Unmarshal(v, &info); err != nil || info.ID == nil {
			m.log.Warn("skipping unreadable framework record", "key", key, "err", err)
			continue
		}
		m.frameworks[info.ID.Value] = &fwRec{info: info, recovered: true, registered: time.Now()}
		m.armFailover(info.ID.Value)
	}
	agents, err := m.cfg.Store.List(ctx, keyAgents)
	if err != nil {
		return fmt.Errorf("master: recover agents: %w", err)
	}
	for key, v := range agents {
		var sa storedAgent
		if err := json.Unmarshal(v, &sa); err != nil || sa.Info.ID == nil {
			m.log.Warn("skipping unreadable agent record", "key", key, "err", err)
			continue
		}
		id := sa.Info.ID.Value
		total := sa.Info.Resources.Normalize()
		dyn, err := m.loadReservations(ctx, id)
		if err != nil {
			return err
		}
		if len(dyn) > 0 {
			total = m.withReservations(id, total, dyn)
		}
		m.agents[id] = &agentRec{recovered: true, info: sa.Info, ip: sa.IP, pid: mesos.AgentPID(sa.IP, sa.Info.Port),
			total: total, registered: time.Now()}
		m.armTimer("agent/"+id, m.cfg.AgentReregisterTimeout, func() { m.expireAgent(id) })
	}
	if err := m.recoverQuota(ctx); err != nil {
		return err
	}
	if len(fws)+len(agents) > 0 {
		m.log.Info("recovered registry", "frameworks", len(m.frameworks), "agents", len(m.agents))
	}
	return nil
}

// storedAgent is an agent's registry record.
type storedAgent struct {
	Info mesos.AgentInfo `json:"agent_info"`
	IP   string          `json:"ip"`
}

// recovering reports whether any agent from the registry has yet to
// re-register. Caller holds mu.
func (m *Master) recovering() bool {
	for _, a := range m.agents {
		if a.recovered {
			return true
		}
	}
	return false
}

// persist writes v under key; failures are logged (the in-memory state
// stays authoritative for this run).
func (m *Master) persist(key string, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = m.cfg.Store.Put(ctx, key, b)
		cancel()
	}
	if err != nil {
		m.log.Error("registry write failed", "key", key, "err", err)
	}
}

func (m *Master) unpersist(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.cfg.Store.Delete(ctx, key); err != nil {
		m.log.Error("registry delete failed", "key", key, "err", err)
	}
}

// kick asks for an allocation cycle soon.
func (m *Master) kick() {
	select {
	case m.trigger <- struct{}{}:
	default:
	}
}

// armTimer runs fn under the lock after d, replacing any timer of the same
// name. Timers are stopped at shutdown.
func (m *Master) armTimer(name string, d time.Duration, fn func()) {
	if t, ok := m.timers[name]; ok {
		t.Stop()
	}
	m.timers[name] = time.AfterFunc(d, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closing {
			return
		}
		delete(m.timers, name)
		fn()
	})
}

func (m *Master) disarmTimer(name string) {
	if t, ok := m.timers[name]; ok {
		t.Stop()
		delete(m.timers, name)
	}
}

func nowSeconds() float64 { return float64(time.Now().UnixNano()) / 1e9 }

func timeSince(t time.Time) float64 { return time.Since(t).Seconds() }

// ParseWeights parses Mesos' --weights syntax: "role1=2,role2=3.5".
func ParseWeights(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		role, w, ok := strings.Cut(item, "=")
		v, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if !ok || strings.TrimSpace(role) == "" || err != nil || v <= 0 {
			return nil, fmt.Errorf("master: weights: %q: want role=positive number", item)
		}
		out[strings.TrimSpace(role)] = v
	}
	return out, nil
}
