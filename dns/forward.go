package dns

import (
	"fmt"
	"net"
	"sort"
	"strings"

	mdns "github.com/miekg/dns"
)

// zoneResolver sends the names under zone to its servers.
type zoneResolver struct {
	zone    string // lowercase FQDN
	servers []string
}

// parseZoneResolvers validates Config.ZoneResolvers against the domain
// and orders the zones longest first, so the most specific one wins.
func parseZoneResolvers(m map[string][]string, domain string) ([]zoneResolver, error) {
	domain = strings.ToLower(mdns.Fqdn(domain))
	var out []zoneResolver
	for zone, servers := range m {
		z := strings.ToLower(mdns.Fqdn(strings.Trim(zone, ".")))
		if z == "." || mdns.IsSubDomain(domain, z) || mdns.IsSubDomain(z, domain) {
			return nil, fmt.Errorf("dns: config: zone resolver %q overlaps the domain %q", zone, domain)
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns: config: zone resolver %q has no servers", zone)
		}
		zr := zoneResolver{zone: z}
		for _, srv := range servers {
			addr, err := resolverAddr(srv)
			if err != nil {
				return nil, fmt.Errorf("dns: config: zone resolver %q: %w", zone, err)
			}
			zr.servers = append(zr.servers, addr)
		}
		out = append(out, zr)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i].zone) != len(out[j].zone) {
			return len(out[i].zone) > len(out[j].zone)
		}
		return out[i].zone < out[j].zone
	})
	return out, nil
}

// resolverAddr accepts "ip" (port 53) or "ip:port".
func resolverAddr(s string) (string, error) {
	if ip := net.ParseIP(s); ip != nil {
		return net.JoinHostPort(s, "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || net.ParseIP(host) == nil || port == "" {
		return "", fmt.Errorf("server %q: want ip or ip:port", s)
	}
	return s, nil
}

// ParseZoneResolvers parses "zone=ip[:port]" entries, as a comma-separated
// --zone_resolvers flag gives them, into Config.ZoneResolvers; a zone
// named twice gets both servers, in order.
func ParseZoneResolvers(list []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, e := range list {
		zone, srv, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok || zone == "" || srv == "" {
			return nil, fmt.Errorf("dns: zone resolver %q: want zone=ip:port", e)
		}
		out[zone] = append(out[zone], srv)
	}
	return out, nil
}

// upstreams returns the servers for a name outside the domain: those of
// the most specific zone resolver that covers it, else the resolvers.
func (s *Server) upstreams(name string) []string {
	for _, zr := range s.zoneResolvers {
		if mdns.IsSubDomain(zr.zone, name) {
			return zr.servers
		}
	}
	return s.cfg.Resolvers
}

// forward relays a query outside the domain to upstreams in order.
func (s *Server) forward(req *mdns.Msg, udp bool, upstreams []string) *mdns.Msg {
	s.metrics.forwarded.Inc()
	c := s.fwd
	if !udp {
		c = &mdns.Client{Net: "tcp", Timeout: s.fwd.Timeout}
	}
	for _, r := range upstreams {
		resp, _, err := c.Exchange(req, r)
		if err == nil && resp != nil {
			resp.Id = req.Id
			return resp
		}
		s.metrics.forwardErrors.Inc()
	}
	resp := new(mdns.Msg)
	resp.SetRcode(req, mdns.RcodeServerFailure)
	return resp
}
