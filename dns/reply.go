package dns

import (
	"math/rand/v2"
	"net"
	"strings"

	mdns "github.com/miekg/dns"
)

// shuffler reorders n answers by calling swap, like rand.Shuffle.
type shuffler func(n int, swap func(i, j int))

// answer builds the reply to req from client, forwarding it when it
// belongs upstream; nil means drop. It is the general path, used over TCP
// and for every UDP query the fast path does not take.
func (s *Server) answer(req *mdns.Msg, udp bool, client net.IP) *mdns.Msg {
	resp, upstreams := s.prepare(req, udp, client)
	if upstreams != nil {
		return s.forward(req, udp, upstreams)
	}
	return resp
}

// prepare answers req from the zone, or returns the upstream servers it
// must be forwarded to (and no reply).
func (s *Server) prepare(req *mdns.Msg, udp bool, client net.IP) (*mdns.Msg, []string) {
	resp := new(mdns.Msg)
	if req.Response || req.Opcode != mdns.OpcodeQuery {
		resp.SetRcode(req, mdns.RcodeNotImplemented)
		return resp, nil
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, mdns.RcodeFormatError)
		return resp, nil
	}
	name := strings.ToLower(req.Question[0].Name)
	z := s.zone.Load()
	if !mdns.IsSubDomain(z.Domain, name) {
		upstreams := s.upstreams(name)
		if len(upstreams) == 0 || !req.RecursionDesired || !s.recursionAllowed(client) {
			resp.SetRcode(req, mdns.RcodeRefused)
			return resp, nil
		}
		return nil, upstreams
	}
	return s.authoritative(z, req, udp, rand.Shuffle), nil
}

// authoritative answers a question under the domain from z, ordering
// multiple answers with shuffle.
func (s *Server) authoritative(z *Records, req *mdns.Msg, udp bool, shuffle shuffler) *mdns.Msg {
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = len(s.cfg.Resolvers) > 0
	rrs, exists := z.Lookup(name)
	if !exists {
		resp.Rcode = mdns.RcodeNameError
		resp.Ns = []mdns.RR{z.SOA}
		return s.finish(req, resp, udp)
	}
	for _, rr := range rrs {
		if q.Qtype == mdns.TypeANY || rr.Header().Rrtype == q.Qtype {
			resp.Answer = append(resp.Answer, rr)
		}
	}
	if len(resp.Answer) == 0 {
		resp.Ns = []mdns.RR{z.SOA}
		return s.finish(req, resp, udp)
	}
	// Spread clients over the tasks: a new order every query.
	if len(resp.Answer) > 1 {
		ans := append([]mdns.RR(nil), resp.Answer...)
		shuffle(len(ans), func(i, j int) { ans[i], ans[j] = ans[j], ans[i] })
		resp.Answer = ans
	}
	// SRV targets resolve in the same answer.
	if q.Qtype == mdns.TypeSRV {
		seen := map[string]bool{}
		for _, rr := range resp.Answer {
			if srv, ok := rr.(*mdns.SRV); ok && !seen[srv.Target] {
				seen[srv.Target] = true
				if extra, ok := z.Lookup(srv.Target); ok {
					for _, e := range extra {
						if e.Header().Rrtype == mdns.TypeA || e.Header().Rrtype == mdns.TypeAAAA {
							resp.Extra = append(resp.Extra, e)
						}
					}
				}
			}
		}
	}
	return s.finish(req, resp, udp)
}

// finish applies EDNS0 and truncation.
func (s *Server) finish(req, resp *mdns.Msg, udp bool) *mdns.Msg {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = int(min(max(opt.UDPSize(), mdns.MinMsgSize), maxUDPSize))
		resp.SetEdns0(maxUDPSize, false)
	}
	if udp {
		resp.Truncate(size)
	}
	return resp
}

// maxUDPSize is the largest UDP reply (and the EDNS size advertised): the
// DNS flag day 2020 figure that avoids IP fragmentation.
const maxUDPSize = 1232
