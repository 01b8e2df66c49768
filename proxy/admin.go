package proxy

import (
	"encoding/json"
	"maps"
	"net/http"
	"sort"
	"strings"
	"time"
)

// RegisterAdmin mounts /v1/routes: the effective routing table with the
// labels each route came from, and the labels that were rejected; and
// /v1/backends: every backend's passive health and in-flight requests.
func (p *Proxy) RegisterAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/backends", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Backends []BackendStatus `json:"backends"`
		}{p.Backends()})
	})
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, r *http.Request) {
		t := p.table.Load()
		routes := append([]*Route(nil), t.routes...)
		sort.Slice(routes, func(i, j int) bool {
			if routes[i].App != routes[j].App {
				return routes[i].App < routes[j].App
			}
			return routes[i].PortIndex < routes[j].PortIndex
		})
		if routes == nil {
			routes = []*Route{}
		}
		for i, r := range routes {
			routes[i] = redacted(r)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Generation  uint64       `json:"generation"`
			Group       string       `json:"group"`
			Routes      []*Route     `json:"routes"`
			LabelErrors []LabelError `json:"label_errors"`
		}{t.Generation, p.cfg.Group, routes, *p.errs.Load()})
	})
}

// Backends returns the passive health of every backend in the table, by
// address.
func (p *Proxy) Backends() []BackendStatus {
	now := time.Now()
	p.mu.Lock()
	out := make([]BackendStatus, 0, len(p.clients))
	for addr, c := range p.clients {
		out = append(out, c.health.status(addr, c.inflight.Load(), now))
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// redacted returns r, or a copy of it whose HAPROXY_*_AUTH labels (which
// hold a password or its hash) are masked.
func redacted(r *Route) *Route {
	var labels map[string]string
	for k := range r.Labels {
		if strings.HasPrefix(k, "HAPROXY_") && strings.HasSuffix(k, "_AUTH") {
			if labels == nil {
				labels = maps.Clone(r.Labels)
			}
			labels[k] = "(redacted)"
		}
	}
	if labels == nil {
		return r
	}
	c := *r
	c.Labels = labels
	return &c
}
