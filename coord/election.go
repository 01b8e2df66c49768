package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/api/mesos"
)

// DefaultSessionTimeout is the ZooKeeper session timeout when
// ElectionConfig.SessionTimeout is zero.
const DefaultSessionTimeout = 10 * time.Second

// Reasons a term or a campaign round ends; they are the context.Cause of
// the term's context.
var (
	errSessionExpired = errors.New("coord: zookeeper session expired")
	errDisconnected   = errors.New("coord: out of touch with zookeeper for (nearly) the session timeout")
	errConnClosed     = errors.New("coord: zookeeper connection closed")
	errQuorumLost     = errors.New("coord: fewer contenders than the quorum")
	errNodeGone       = errors.New("coord: our election node was deleted")
	errWithdrawn      = errors.New("coord: withdrawn from the election")
)

// ElectionConfig configures Campaign.
type ElectionConfig struct {
	// ZK is the zk://host:port,host:port/path URL. The election nodes are
	// the children of path, the durable state lives under path/state.
	ZK string
	// Info is this master's MasterInfo, stored as JSON in its election
	// node (what Mesos leader detectors read).
	Info mesos.MasterInfo
	// Quorum is the number of contenders (election nodes, this one
	// included) needed for anyone to lead. 0 or 1: no check.
	Quorum int
	// SessionTimeout is the ZooKeeper session timeout (default 10s). The
	// servers' minSessionTimeout..maxSessionTimeout must allow it.
	SessionTimeout time.Duration
	// Log receives state changes; nil logs nothing.
	Log *slog.Logger
	// Registerer, when set, gets keel_coord_leader and
	// keel_coord_elections_total.
	Registerer prometheus.Registerer

	// now reads the wall clock; tests replace it to simulate a freeze.
	now func() time.Time
	// tick is the watchdog period (default SessionTimeout/20).
	tick time.Duration
}

// Event tells the campaigning master whether it leads. Events arrive in
// order; a Leader event's term may already be over when it is received, so
// act on Term.Context (or Term.Leading), not on the event alone.
type Event struct {
	// Leader is true when this master has become leader for Term.
	Leader bool
	// Term is the term that began (Leader) or the one that ended (not
	// Leader; zero when this master had not led since the last event).
	Term Term
}

// Term is one continuous period of leadership.
type Term struct {
	// N counts this Election's terms, from 1.
	N uint64
	// Node is the full path of this master's election node during the
	// term; ZKStore writes are fenced on it.
	Node string

	// ctx is held (against house style) because a term is a lifetime: it
	// is cancelled the moment leadership ends, whoever detects it.
	ctx     context.Context
	conn    *zk.Conn
	base    string
	beat    *atomic.Int64 // wall clock (unix ns) of the watchdog's last check
	timeout time.Duration // pauseLimit of the session timeout
	now     func() time.Time
}

// Context is cancelled the moment the term ends; context.Cause says why.
func (t Term) Context() context.Context {
	if t.ctx == nil {
		return canceled
	}
	return t.ctx
}

// Leading reports whether the term is still on. Unlike Context, it is
// false at once after the process resumes from a freeze long enough for
// the session to have expired (see pauseLimit), before the watchdog has
// run.
func (t Term) Leading() bool {
	if t.ctx == nil || t.ctx.Err() != nil {
		return false
	}
	last := time.Unix(0, t.beat.Load())
	return t.now().Sub(last) <= t.timeout
}

var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Election is one master's campaign, started by Campaign.
type Election struct {
	cfg     ElectionConfig
	servers []string
	path    string
	log     *slog.Logger

	leader    prometheus.Gauge
	elections prometheus.Counter

	mu      sync.Mutex
	pending []Event
	wake    chan struct{}
	out     chan Event
	done    chan struct{}
}

// Campaign validates cfg and enters the election in the background: it
// connects to ZooKeeper, creates an EPHEMERAL|SEQUENTIAL node
// path/json.info_NNNNNNNNNN holding cfg.Info as JSON, and leads while that
// node has the lowest sequence number among the json.info_ children and
// there are at least Quorum of them.
//
// Leadership ends at once (the term's context is cancelled) when the
// session expires, when the connection has been lost for as long as
// ZooKeeper waits before it expires the session (counted, as ZooKeeper
// counts, from the last message, less a tenth for safety), when the contenders drop below the quorum, when our node
// is deleted, or when a watchdog sees that the process was frozen (SIGSTOP,
// suspend) for longer than the session timeout. After a lost session it
// campaigns again with a new session, first deleting the node it left.
//
// When ctx ends it withdraws: deletes its node, closes the session (within
// a few seconds) and then closes Events and Done.
func Campaign(ctx context.Context, cfg ElectionConfig) (*Election, error) {
	servers, path, err := ParseZK(cfg.ZK)
	if err != nil {
		return nil, err
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.SessionTimeout < 0 || cfg.Quorum < 0 {
		return nil, fmt.Errorf("coord: negative session timeout or quorum")
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.tick == 0 {
		cfg.tick = max(cfg.SessionTimeout/20, 10*time.Millisecond)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Election{
		cfg: cfg, servers: servers, path: path,
		log:  log.With("component", "coord", "zk_path", path),
		wake: make(chan struct{}, 1),
		out:  make(chan Event),
		done: make(chan struct{}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "keel", Subsystem: "coord", Name: "leader",
			Help: "1 while this master leads, else 0.",
		}),
		elections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "keel", Subsystem: "coord", Name: "elections_total",
			Help: "Terms of leadership this master has begun.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{e.leader, e.elections} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("coord: register metrics: %w", err)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.run(ctx) })
	wg.Go(func() { e.publish(ctx) })
	go func() {
		wg.Wait()
		close(e.out)
		close(e.done)
	}()
	return e, nil
}

// Events delivers leadership changes. It is closed after withdrawal.
func (e *Election) Events() <-chan Event { return e.out }

// Done is closed once the election has withdrawn after its context ended:
// the node is deleted (or its session closed) and no goroutine is left.
func (e *Election) Done() <-chan struct{} { return e.done }

// emit queues ev for Events without ever blocking the campaign: a slow
// reader must not delay the end of a term.
func (e *Election) emit(ev Event) {
	e.mu.Lock()
	e.pending = append(e.pending, ev)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Election) publish(ctx context.Context) {
	for {
		e.mu.Lock()
		if len(e.pending) == 0 {
			e.mu.Unlock()
			select {
			case <-e.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		ev := e.pending[0]
		e.pending = e.pending[1:]
		e.mu.Unlock()
		select {
		case e.out <- ev:
		case <-ctx.Done():
			return
		}
	}
}

func (e *Election) run(ctx context.Context) {
	var (
		stale string
		n     uint64
	)
	for {
		stale = e.round(ctx, &n, stale)
		// Jittered pause before the next session, so a flapping ensemble
		// is not hammered by every master at once.
		wait := time.Duration(250+rand.IntN(500)) * time.Millisecond
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// round is one session: connect, create the node, follow the children
// until something ends it. It returns the node it leaves behind (to delete
// next round) or "".
func (e *Election) round(ctx context.Context, n *uint64, stale string) (left string) {
	timeout := e.cfg.SessionTimeout
	dctx, cancel := context.WithTimeout(ctx, timeout)
	last := newContact()
	conn, events, err := dial(dctx, e.servers, timeout, e.log, last)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("zookeeper unreachable", "err", err)
		}
		return stale
	}
	// The round's context ends with a cause saying why, also when ctx ends
	// (errWithdrawn rather than a bare context.Canceled).
	rctx, end := context.WithCancelCause(context.WithoutCancel(ctx))
	stopAfter := context.AfterFunc(ctx, func() { end(errWithdrawn) })
	defer stopAfter()
	beat := new(atomic.Int64)
	beat.Store(e.cfg.now().UnixNano())
	var wg sync.WaitGroup
	wg.Go(func() { watchSession(rctx, events, timeout, last, end) })
	wg.Go(func() { e.watchdog(rctx, beat, end) })

	node := ""
	defer func() {
		end(errWithdrawn)
		wg.Wait()
		if node != "" && conn.State() == zk.StateHasSession {
			// Bounded even when ctx is already over: we are withdrawing.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, err := call(dctx, func() (struct{}, error) { return struct{}{}, conn.Delete(node, -1) })
			cancel()
			if err == nil || errors.Is(err, zk.ErrNoNode) {
				left = ""
			}
		}
		conn.Close()
	}()

	if err := ensurePath(rctx, conn, e.path); err != nil {
		e.log.Warn("cannot create election path", "err", err)
		return stale
	}
	if stale != "" {
		_, err := call(rctx, func() (struct{}, error) { return struct{}{}, conn.Delete(stale, -1) })
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			e.log.Warn("cannot delete our stale election node", "node", stale, "err", err)
			return stale
		}
		e.log.Info("deleted our stale election node", "node", stale)
	}
	data, err := json.Marshal(e.cfg.Info)
	if err != nil {
		e.log.Error("cannot encode master info", "err", err)
		return ""
	}
	node, err = call(rctx, func() (string, error) {
		return conn.Create(e.path+"/"+nodePrefix, data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	})
	if err != nil {
		e.log.Warn("cannot create election node", "err", err)
		node = ""
		return ""
	}
	ours := node[strings.LastIndex(node, "/")+1:]
	e.log.Info("contending", "node", node)

	var (
		term     *Term
		endTerm  context.CancelCauseFunc
		reported bool // whether a not-leader event has been sent since the last term
	)
	stop := func(cause error) {
		if term == nil {
			return
		}
		endTerm(cause)
		e.leader.Set(0)
		e.log.Info("leadership ended", "term", term.N, "reason", cause)
		e.emit(Event{Leader: false, Term: *term})
		term, reported = nil, true
	}
	defer func() {
		cause := context.Cause(rctx)
		if ctx.Err() != nil || cause == nil {
			cause = errWithdrawn
		}
		stop(cause)
	}()

	for {
		children, watch, err := childrenW(rctx, conn, e.path)
		if err != nil && transient(err) {
			// The connection dropped under the request. The session (and
			// the term) survive that until watchSession says otherwise, so
			// ask again once the client has had time to reconnect.
			select {
			case <-rctx.Done():
				return node
			case <-time.After(200 * time.Millisecond):
				continue
			}
		}
		if err != nil {
			if rctx.Err() == nil {
				e.log.Warn("cannot list contenders", "err", err)
				end(fmt.Errorf("coord: list contenders: %w", err))
			}
			return node
		}
		contenders := Contenders(children)
		if !slices.Contains(contenders, ours) {
			e.log.Warn("our election node is gone", "node", node)
			end(errNodeGone)
			node = ""
			return ""
		}
		leading := contenders[0] == ours && (e.cfg.Quorum <= 1 || len(contenders) >= e.cfg.Quorum)
		switch {
		case leading && term == nil:
			*n++
			tctx, cancel := context.WithCancelCause(rctx)
			term = &Term{N: *n, Node: node, ctx: tctx, conn: conn, base: e.path, beat: beat, timeout: pauseLimit(timeout), now: e.cfg.now}
			endTerm = cancel
			e.elections.Inc()
			e.leader.Set(1)
			e.log.Info("leading", "term", term.N, "node", node, "contenders", len(contenders))
			e.emit(Event{Leader: true, Term: *term})
		case !leading && term != nil:
			stop(errQuorumLost)
		case !leading && !reported:
			reported = true
			e.log.Info("not leading", "leader", contenders[0], "contenders", len(contenders), "quorum", e.cfg.Quorum)
			e.emit(Event{Leader: false})
		}
		select {
		case <-rctx.Done():
			return node
		case <-watch:
		}
	}
}

// transient reports whether err only says that the connection to one
// server was lost (the session may well live on through another).
func transient(err error) bool {
	var ne net.Error
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne)
}

// childrenW lists path's children and watches them.
func childrenW(ctx context.Context, conn *zk.Conn, path string) ([]string, <-chan zk.Event, error) {
	type res struct {
		children []string
		watch    <-chan zk.Event
	}
	r, err := call(ctx, func() (res, error) {
		c, _, w, err := conn.ChildrenW(path)
		return res{c, w}, err
	})
	return r.children, r.watch, err
}

// Contenders returns the json.info_ election nodes among children, lowest
// sequence number (the leader) first.
func Contenders(children []string) []string {
	var out []string
	for _, c := range children {
		if seq, ok := strings.CutPrefix(c, nodePrefix); ok && len(seq) >= 10 && isDigits(seq) {
			out = append(out, c)
		}
	}
	// Equal-width zero-padded sequences sort as numbers; the counter is a
	// signed 32-bit int, so widths can differ only after it wraps.
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return out
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// watchSession ends the round when the session expires, when the
// connection has been lost for nearly timeout (counted from the last word
// of the servers, as they count it), or when the connection closes.
func watchSession(ctx context.Context, events <-chan zk.Event, timeout time.Duration, last *contact, end context.CancelCauseFunc) {
	var (
		timer *time.Timer
		lost  <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			end(errDisconnected)
			return
		case ev, ok := <-events:
			if !ok {
				end(errConnClosed)
				return
			}
			if ev.Type != zk.EventSession {
				continue
			}
			switch ev.State {
			case zk.StateExpired:
				end(errSessionExpired)
				return
			case zk.StateDisconnected:
				if timer == nil {
					// A tenth early, so this leader is gone before
					// ZooKeeper can expire the session and a successor can
					// be elected, whatever the timer's jitter.
					timer = time.NewTimer(max(timeout-timeout/10-last.since(), 0))
					lost = timer.C
				}
			case zk.StateHasSession:
				if timer != nil {
					timer.Stop()
					timer, lost = nil, nil
				}
			}
		}
	}
}

// watchdog ends the round when the process has not run for longer than the
// session timeout (SIGSTOP, a suspended VM): by then ZooKeeper may have
// expired the session and elected another leader without this process
// having heard of it.
func (e *Election) watchdog(ctx context.Context, beat *atomic.Int64, end context.CancelCauseFunc) {
	t := time.NewTicker(e.cfg.tick)
	defer t.Stop()
	lastWall, lastMono := e.cfg.now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			wall, mono := e.cfg.now(), time.Now()
			if gap, ok := frozen(lastWall, wall, lastMono, mono, pauseLimit(e.cfg.SessionTimeout)); ok {
				end(fmt.Errorf("coord: process did not run for %s, long enough for its session to expire", gap))
				return
			}
			lastWall, lastMono = wall, mono
			beat.Store(wall.UnixNano())
		}
	}
}

// pauseLimit is the longest a leader's process may stop running (a
// freeze, a suspend, a long pause) and still lead. ZooKeeper expires a
// session a session timeout after it last heard from the client, and the
// client pings only every third of it, so the session can expire as soon
// as two thirds of the timeout after the process stopped: half of it
// leaves room for the watchdog's tick and the scheduler.
func pauseLimit(sessionTimeout time.Duration) time.Duration { return sessionTimeout / 2 }

// frozen reports whether the time between two watchdog checks exceeds
// timeout, by the wall clock (which counts a system suspend) or the
// monotonic clock (which does not jump with NTP), whichever is larger.
func frozen(prevWall, wall, prevMono, mono time.Time, timeout time.Duration) (time.Duration, bool) {
	gap := max(wall.Round(0).Sub(prevWall.Round(0)), mono.Sub(prevMono))
	return gap, gap > timeout
}
