package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/api/mesos"
)

// Elector is the leader election an HA master takes part in (coord's
// ZooKeeper election, adapted in cmd). Campaign blocks until this master
// leads (or ctx ends) and returns the term; Leader tells who leads now.
type Elector interface {
	Campaign(ctx context.Context, info mesos.MasterInfo) (Term, error)
	Leader() (mesos.MasterInfo, bool)
}

// Term is one period of leadership. Ctx ends the moment leadership is
// lost; Store is fenced to the term, so a deposed leader's writes fail.
type Term struct {
	Ctx   context.Context
	Store Store
	// Leading, when set, is checked on every request as well: false the
	// moment a frozen process wakes past its session, before Ctx ends.
	Leading func() bool
}

// standalone is the Elector of a master without HA: it leads at once,
// for as long as the process runs, on the configured store.
type standalone struct {
	store Store
	info  atomic.Pointer[mesos.MasterInfo]
}

func (s *standalone) Campaign(ctx context.Context, info mesos.MasterInfo) (Term, error) {
	if s.info.Load() != nil {
		// One term only: the next campaign waits for the end.
		<-ctx.Done()
		return Term{}, ctx.Err()
	}
	s.info.Store(&info)
	return Term{Ctx: ctx, Store: s.store}, nil
}

func (s *standalone) Leader() (mesos.MasterInfo, bool) {
	if i := s.info.Load(); i != nil {
		return *i, true
	}
	return mesos.MasterInfo{}, false
}

// server is the part of a master that outlives terms: the listener, the
// identity, the metrics, and the pointer to the term now leading (nil
// while standing by), which every API request loads once.
type server struct {
	cfg     Config
	info    mesos.MasterInfo
	elector Elector
	metrics *metrics
	cur     atomic.Pointer[Master]
	start   time.Time
}

// Run serves the master's APIs until ctx is done, then closes every stream
// and returns nil. Standalone (no Elector) it leads at once on
// cfg.Store; with an Elector it campaigns, leads while elected (a fresh
// registry each term, recovered from the term's store) and redirects to
// the leader otherwise. It fails if the address cannot be bound or a
// standalone registry cannot be read.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("master: listen: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &server{cfg: cfg, info: masterInfo(cfg, addr), elector: cfg.Elector, start: time.Now()}
	ha := s.elector != nil
	if !ha {
		s.elector = &standalone{store: cfg.Store}
	}
	s.metrics = newMetrics(cfg.Registerer, s)
	log := cfg.Logger.With("component", "master")

	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	g, gctx := errgroup.WithContext(ctx)
	ready := func() {
		if cfg.OnListen != nil {
			cfg.OnListen(addr)
			cfg.OnListen = nil
		}
	}
	if ha {
		// A standby serves redirects from the start.
		ready()
	}
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("master: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				srv.Close()
			}
		}()
		log.Info("master listening", "addr", addr.String(), "id", s.info.ID, "ha", ha)
		for {
			term, err := s.elector.Campaign(gctx, s.info)
			if err != nil {
				if gctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("master: campaign: %w", err)
			}
			m := newTerm(cfg, s.info, term.Store, s.metrics, log)
			m.term = term
			if err := m.recover(term.Ctx); err != nil {
				if !ha {
					return err
				}
				// A term that cannot read its registry must not lead.
				log.Error("could not recover the registry; standing down", "err", err)
				<-term.Ctx.Done()
				continue
			}
			s.cur.Store(m)
			s.metrics.elected.Set(1)
			s.metrics.elections.Inc()
			if ha {
				log.Info("elected leading master", "id", s.info.ID)
			}
			ready()
			tctx, endTerm := context.WithCancel(term.Ctx)
			var hookErr error
			hookDone := make(chan struct{})
			go func() {
				defer close(hookDone)
				if cfg.OnTerm == nil {
					return
				}
				if err := cfg.OnTerm(tctx, term.Store); err != nil && tctx.Err() == nil {
					hookErr = err
					endTerm()
				}
			}()
			m.allocationLoop(tctx)
			endTerm()
			s.cur.Store(nil)
			s.metrics.elected.Set(0)
			m.shutdown()
			<-hookDone
			if hookErr != nil {
				return hookErr
			}
			if gctx.Err() != nil {
				return nil
			}
			log.Warn("no longer the leading master; standing by")
		}
	})
	return g.Wait()
}

// handler routes what every master answers itself (health, version,
// metrics, the leader redirect) and hands the APIs to the leading term,
// or redirects them to the leader while standing by.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version})
	})
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /master/redirect", func(w http.ResponseWriter, r *http.Request) {
		leader, ok := s.elector.Leader()
		if !ok || leader.Address == nil {
			httpError(w, http.StatusServiceUnavailable, "No leading master is known")
			return
		}
		http.Redirect(w, r, "//"+net.JoinHostPort(leader.Address.Hostname, itoa(leader.Address.Port)), http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// A term whose context ended no longer serves, even before the
		// campaign loop has noticed.
		if m := s.cur.Load(); m != nil && m.leading() {
			m.handler().ServeHTTP(w, r)
			return
		}
		s.redirect(w, r)
	})
	return mux
}

// redirect sends a standby's request to the leader with 307 (method and
// body kept, as Mesos' non-leading masters do), or 503 while no leader
// is known.
func (s *server) redirect(w http.ResponseWriter, r *http.Request) {
	leader, ok := s.elector.Leader()
	if !ok || leader.Address == nil || leader.ID == s.info.ID {
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, "This master is not the leader and no leader is known yet")
		return
	}
	host := leader.Address.IP
	if host == "" {
		host = leader.Address.Hostname
	}
	http.Redirect(w, r, "http://"+net.JoinHostPort(host, itoa(leader.Address.Port))+r.URL.RequestURI(), http.StatusTemporaryRedirect)
}

// leading reports whether m's term is still on.
func (m *Master) leading() bool {
	if m.term.Ctx != nil && m.term.Ctx.Err() != nil {
		return false
	}
	return m.term.Leading == nil || m.term.Leading()
}
