// Package scopedreg is a prometheus.Registerer whose registrations last
// for a scope: a component started once per leadership term (the apps
// framework) registers its metrics through it, and Close unregisters
// them, so the next term can register fresh ones on the same registry.
package scopedreg

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Registerer registers on an underlying Registerer and remembers what it
// registered until Close.
type Registerer struct {
	reg prometheus.Registerer

	mu   sync.Mutex
	done []prometheus.Collector
}

var _ prometheus.Registerer = (*Registerer)(nil)

// New returns a scope on reg.
func New(reg prometheus.Registerer) *Registerer { return &Registerer{reg: reg} }

// Register implements prometheus.Registerer.
func (r *Registerer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.done = append(r.done, c)
	r.mu.Unlock()
	return nil
}

// MustRegister implements prometheus.Registerer.
func (r *Registerer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (r *Registerer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// Close unregisters everything registered through r.
func (r *Registerer) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.done {
		r.reg.Unregister(c)
	}
	r.done = nil
}
