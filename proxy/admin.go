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
// labels each route came from and its source (an app of the cluster or
// the static routes file), and the labels that were rejected, static
// routes left out and a refused routes file among them; and /v1/backends:
// every backend's passive health and in-flight requests.
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
		views := make([]routeView, len(routes))
		for i, r := range routes {
			views[i] = viewOf(redacted(r))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Generation  uint64       `json:"generation"`
			Group       string       `json:"group"`
			Routes      []routeView  `json:"routes"`
			LabelErrors []LabelError `json:"label_errors"`
		}{t.Generation, p.cfg.Group, views, *p.errs.Load()})
	})
}

// Sources of routes on /v1/routes.
const (
	sourceApp    = "app"
	sourceStatic = "static"
)

// routeView is a route as /v1/routes shows it: the route's own fields,
// and where it came from.
type routeView struct {
	*Route
	// Source is "app" (the cluster's) or "static" (the routes file).
	Source string `json:"source"`
	// RoutesFile is the file a static route came from.
	RoutesFile string `json:"routes_file,omitempty"`
}

func viewOf(r *Route) routeView {
	v := routeView{Route: r, Source: sourceApp}
	if f, ok := r.Labels[staticFileLabel]; ok && strings.HasPrefix(r.App, staticPrefix) {
		v.Source, v.RoutesFile = sourceStatic, f
	}
	return v
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
