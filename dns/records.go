package dns

import (
	"fmt"
	"hash/fnv"
	"net"
	"sort"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/keelhq/keel/snapshot"
)

// BuildOptions are the zone's parameters.
type BuildOptions struct {
	Domain      string
	TTL         uint32
	HealthyOnly bool
	// IPSources orders where a task's IP comes from: "netinfo" (the task's
	// own addresses) and "host"/"mesos" (the agent's).
	IPSources []string
}

// Records is an immutable zone: every name in the domain with its records.
type Records struct {
	Domain     string // "mesos." (FQDN, lowercase)
	Generation uint64
	SOA        *mdns.SOA
	names      map[string]*rrset
	count      int
}

type rrset struct {
	a, aaaa, srv, other []mdns.RR
}

func (s *rrset) all() []mdns.RR {
	out := make([]mdns.RR, 0, len(s.a)+len(s.aaaa)+len(s.srv)+len(s.other))
	out = append(out, s.a...)
	out = append(out, s.aaaa...)
	out = append(out, s.srv...)
	return append(out, s.other...)
}

// Len returns the number of records.
func (r *Records) Len() int { return r.count }

// Lookup returns the records of name (lowercase FQDN) and whether the name
// exists.
func (r *Records) Lookup(name string) ([]mdns.RR, bool) {
	s, ok := r.names[name]
	if !ok {
		return nil, false
	}
	return s.all(), true
}

// Names returns every name in the zone, sorted.
func (r *Records) Names() []string {
	out := make([]string, 0, len(r.names))
	for n := range r.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Label sanitises a name into one DNS label as Mesos-DNS does: lowercase,
// '.' and '_' become '-', other characters outside [a-z0-9-] are dropped,
// hyphens are trimmed from both ends, and the result is cut to 63 bytes.
func Label(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			b.WriteRune(c)
		case c == '.', c == '_':
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}

// Build renders a snapshot as a zone. It is pure and deterministic.
func Build(snap *snapshot.Snapshot, opts BuildOptions) *Records {
	domain := strings.ToLower(strings.Trim(opts.Domain, ".")) + "."
	ttl := opts.TTL
	r := &Records{Domain: domain, Generation: snap.Generation, names: map[string]*rrset{}}
	add := func(rr mdns.RR) {
		name := strings.ToLower(rr.Header().Name)
		s := r.names[name]
		if s == nil {
			s = &rrset{}
			r.names[name] = s
		}
		switch rr.(type) {
		case *mdns.A:
			for _, x := range s.a {
				if x.(*mdns.A).A.Equal(rr.(*mdns.A).A) {
					return
				}
			}
			s.a = append(s.a, rr)
		case *mdns.AAAA:
			s.aaaa = append(s.aaaa, rr)
		case *mdns.SRV:
			for _, x := range s.srv {
				if x.String() == rr.String() {
					return
				}
			}
			s.srv = append(s.srv, rr)
		default:
			s.other = append(s.other, rr)
		}
		r.count++
	}
	hdr := func(name string, t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
	}
	addIP := func(name, ip string) {
		p := net.ParseIP(ip)
		switch {
		case p == nil:
		case p.To4() != nil:
			add(&mdns.A{Hdr: hdr(name, mdns.TypeA), A: p.To4()})
		default:
			add(&mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA), AAAA: p})
		}
	}
	addSRV := func(name, target string, port uint32) {
		add(&mdns.SRV{Hdr: hdr(name, mdns.TypeSRV), Priority: 0, Weight: 0, Port: uint16(port), Target: target})
	}

	// Apex: SOA, NS, ns1.
	ns := "ns1." + domain
	r.SOA = &mdns.SOA{Hdr: hdr(domain, mdns.TypeSOA), Ns: ns, Mbox: "root." + ns, Serial: uint32(snap.Generation),
		Refresh: 60, Retry: 600, Expire: 86400, Minttl: ttl}
	add(r.SOA)
	add(&mdns.NS{Hdr: hdr(domain, mdns.TypeNS), Ns: ns})
	leaderIP := snap.Leader.IP
	if leaderIP == "" {
		leaderIP = "127.0.0.1"
	}
	addIP(ns, leaderIP)

	// Masters.
	if snap.Leader.IP != "" {
		addIP("leader."+domain, snap.Leader.IP)
		port := uint32(snap.Leader.Port)
		if port == 0 {
			port = 5050
		}
		addSRV("_leader._tcp."+domain, "leader."+domain, port)
		addSRV("_leader._udp."+domain, "leader."+domain, port)
	}
	for i, m := range snap.Masters {
		if m.IP == "" {
			continue
		}
		addIP("master."+domain, m.IP)
		addIP(fmt.Sprintf("master%d.%s", i, domain), m.IP)
	}

	// Agents.
	agentIDs := make([]string, 0, len(snap.Agents))
	for id := range snap.Agents {
		agentIDs = append(agentIDs, id)
	}
	sort.Strings(agentIDs)
	for _, id := range agentIDs {
		addIP("slave."+domain, snap.Agents[id].IP)
	}

	// Tasks.
	for i := range snap.Tasks {
		t := &snap.Tasks[i]
		if !t.Routable(opts.HealthyOnly) {
			continue
		}
		tname, fname := Label(t.Name), Label(t.FrameworkName)
		if tname == "" || fname == "" {
			continue
		}
		canonical := tname + "-" + hashTag(t.ID) + "-" + agentTail(t.AgentID)
		taskIPs := taskIPs(t, opts.IPSources)
		for _, base := range []string{tname, canonical} {
			for _, ip := range taskIPs {
				addIP(base+"."+fname+"."+domain, ip)
			}
			addIP(base+"."+fname+".slave."+domain, t.AgentIP)
		}
		target := canonical + "." + fname + ".slave." + domain
		for _, p := range t.Ports {
			proto := "_tcp"
			if p.Protocol == "udp" {
				proto = "_udp"
			}
			addSRV("_"+tname+"."+proto+"."+fname+"."+domain, target, p.Number)
			addSRV("_"+tname+"."+proto+"."+fname+".slave."+domain, target, p.Number)
			if pn := Label(p.Name); pn != "" {
				addSRV("_"+pn+"._"+tname+"."+proto+"."+fname+"."+domain, target, p.Number)
			}
		}
	}
	return r
}

// taskIPs picks a task's addresses by the configured sources.
func taskIPs(t *snapshot.Task, sources []string) []string {
	if len(sources) == 0 {
		sources = []string{"netinfo", "mesos", "host"}
	}
	for _, s := range sources {
		switch s {
		case "netinfo", "docker":
			if len(t.IPs) > 0 {
				return t.IPs
			}
		case "mesos", "host":
			if t.AgentIP != "" {
				return []string{t.AgentIP}
			}
		}
	}
	return nil
}

// hashTag is a short stable tag of a task ID for per-instance names.
func hashTag(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	v := h.Sum32()
	b := make([]byte, 5)
	for i := range b {
		b[i] = alphabet[v%36]
		v /= 36
	}
	return string(b)
}

// agentTail is the last element of an agent ID ("...-S3" -> "s3"), as
// Mesos-DNS uses it in per-instance names.
func agentTail(id string) string {
	if i := strings.LastIndexByte(id, '-'); i >= 0 {
		id = id[i+1:]
	}
	if l := Label(id); l != "" {
		return l
	}
	return "agent"
}
