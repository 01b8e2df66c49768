package dns

import (
	"encoding/json"
	"net/http"
	"strings"

	mdns "github.com/miekg/dns"
)

// RegisterHTTP mounts the Mesos-DNS HTTP API on mux.
func (s *Server) RegisterHTTP(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"Service": "Keel DNS (Mesos-DNS compatible)", "URL": "https://github.com/keelhq/keel", "Version": s.cfg.Version})
	})
	// Mesos-DNS reports zoneResolvers as a map, {} when there are none.
	zoneResolvers := map[string][]string{}
	for _, zr := range s.zoneResolvers {
		zoneResolvers[zr.zone] = zr.servers
	}
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"Domain": s.cfg.Domain, "TTL": s.cfg.TTL, "Resolvers": s.cfg.Resolvers,
			"IPSources": s.cfg.IPSources, "EnforceRFC952": s.cfg.EnforceRFC952, "HealthyOnly": s.cfg.HealthyOnly, "Listener": s.cfg.Addr,
			"ZoneResolvers": zoneResolvers, "RateLimit": s.cfg.RateLimit, "RateLimitSlip": s.cfg.RateLimitSlip})
	})
	mux.HandleFunc("GET /v1/hosts/{host}", func(w http.ResponseWriter, r *http.Request) {
		type host struct {
			Host string `json:"host"`
			IP   string `json:"ip"`
		}
		out := []host{}
		name := mdns.Fqdn(strings.ToLower(r.PathValue("host")))
		rrs, _ := s.zone.Load().Lookup(name)
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *mdns.A:
				out = append(out, host{Host: name, IP: v.A.String()})
			case *mdns.AAAA:
				out = append(out, host{Host: name, IP: v.AAAA.String()})
			}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /v1/services/{service}", func(w http.ResponseWriter, r *http.Request) {
		type service struct {
			Service string `json:"service"`
			Host    string `json:"host"`
			IP      string `json:"ip"`
			Port    string `json:"port"`
		}
		out := []service{}
		z := s.zone.Load()
		name := mdns.Fqdn(strings.ToLower(r.PathValue("service")))
		rrs, _ := z.Lookup(name)
		for _, rr := range rrs {
			srv, ok := rr.(*mdns.SRV)
			if !ok {
				continue
			}
			ip := ""
			if targets, ok := z.Lookup(srv.Target); ok {
				for _, t := range targets {
					if a, ok := t.(*mdns.A); ok {
						ip = a.A.String()
					}
				}
			}
			out = append(out, service{Service: name, Host: srv.Target, IP: ip, Port: itoa(int(srv.Port))})
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /v1/enumerate", func(w http.ResponseWriter, r *http.Request) {
		z := s.zone.Load()
		out := struct {
			Domain     string   `json:"domain"`
			Generation uint64   `json:"generation"`
			Records    []Record `json:"records"`
		}{Domain: z.Domain, Generation: z.Generation, Records: []Record{}}
		for _, name := range z.Names() {
			rrs, _ := z.Lookup(name)
			out.Records = append(out.Records, records(name, rrs)...)
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /v1/watch", s.serveWatch)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
