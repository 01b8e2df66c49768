package proxy

import (
	"encoding/json"
	"net/http"
	"sort"
)

// RegisterAdmin mounts /v1/routes: the effective routing table with the
// labels each route came from, and the labels that were rejected.
func (p *Proxy) RegisterAdmin(mux *http.ServeMux) {
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
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Generation  uint64       `json:"generation"`
			Group       string       `json:"group"`
			Routes      []*Route     `json:"routes"`
			LabelErrors []LabelError `json:"label_errors"`
		}{t.Generation, p.cfg.Group, routes, *p.errs.Load()})
	})
}
