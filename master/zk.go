package master

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/coord"
)

// ZKElector is the Elector of an HA master on ZooKeeper: coord's
// election (Mesos' json.info_ layout, quorum, session and freeze checks)
// for terms, coord's fenced ZKStore as each term's registry, and a
// coord.Detector for who leads while this master stands by. The detector
// must be Run by the caller.
type ZKElector struct {
	cfg coord.ElectionConfig
	det *coord.Detector
	log *slog.Logger

	mu    sync.Mutex
	el    *coord.Election
	store *coord.ZKStore // of the last term, closed when the next begins
}

var _ Elector = (*ZKElector)(nil)

// NewZKElector returns an Elector campaigning with cfg (its Info is set
// by the master at the first Campaign) and naming the leader from det.
func NewZKElector(cfg coord.ElectionConfig, det *coord.Detector, log *slog.Logger) *ZKElector {
	if log == nil {
		log = slog.Default()
	}
	return &ZKElector{cfg: cfg, det: det, log: log}
}

// Campaign enters the election on the first call and then waits for
// the next term this master leads; it returns that term with a store
// fenced to it.
func (z *ZKElector) Campaign(ctx context.Context, info mesos.MasterInfo) (Term, error) {
	z.mu.Lock()
	if z.store != nil {
		z.store.Close()
		z.store = nil
	}
	if z.el == nil {
		cfg := z.cfg
		cfg.Info = info
		el, err := coord.Campaign(ctx, cfg)
		if err != nil {
			z.mu.Unlock()
			return Term{}, err
		}
		z.el = el
	}
	el := z.el
	z.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return Term{}, ctx.Err()
		case ev, ok := <-el.Events():
			if !ok {
				if ctx.Err() != nil {
					return Term{}, ctx.Err()
				}
				return Term{}, errors.New("master: the election ended")
			}
			if !ev.Leader || !ev.Term.Leading() {
				continue
			}
			store, err := coord.NewZKStore(ev.Term.Context(), ev.Term)
			if err != nil {
				z.log.Warn("elected, but the registry cannot be opened; waiting for the next term", "err", err)
				continue
			}
			z.mu.Lock()
			z.store = store
			z.mu.Unlock()
			return Term{Ctx: ev.Term.Context(), Store: store, Leading: ev.Term.Leading}, nil
		}
	}
}

// Leader returns the leading master as the detector sees it.
func (z *ZKElector) Leader() (mesos.MasterInfo, bool) { return z.det.Leader() }
