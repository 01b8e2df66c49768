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
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"Domain": s.cfg.Domain, "TTL": s.cfg.TTL, "Resolvers": s.cfg.Resolvers,
			"IPSources": s.cfg.IPSources, "HealthyOnly": s.cfg.HealthyOnly, "Listener": s.cfg.Addr})
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
		type record struct {
			Name  string `json:"name"`
			Host  string `json:"host"`
			Rtype string `json:"rtype"`
		}
		z := s.zone.Load()
		out := struct {
			Domain     string   `json:"domain"`
			Generation uint64   `json:"generation"`
			Records    []record `json:"records"`
		}{Domain: z.Domain, Generation: z.Generation, Records: []record{}}
		for _, name := range z.Names() {
			rrs, _ := z.Lookup(name)
			for _, rr := range rrs {
				data := strings.TrimPrefix(rr.String(), rr.Header().String())
				out.Records = append(out.Records, record{Name: name, Host: data, Rtype: mdns.TypeToString[rr.Header().Rrtype]})
			}
		}
		writeJSON(w, out)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
