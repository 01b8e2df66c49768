package dns

import (
	"fmt"
	"hash/fnv"
	"net"
	"slices"
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
	// EnforceRFC952 makes task and framework labels RFC 952 names (start
	// with a letter, at most 24 bytes), as Mesos-DNS's EnforceRFC952 does;
	// by default they follow RFC 1123 (at most 63 bytes).
	EnforceRFC952 bool
}

// Records is an immutable zone: every name in the domain with its records.
type Records struct {
	Domain     string // "mesos." (FQDN, lowercase)
	Generation uint64
	SOA        *mdns.SOA
	// names maps each name to its records, A first, then AAAA, SRV and
	// the rest (see rank).
	names map[string][]mdns.RR
	count int
	// cache holds packed replies, filled by queries; it goes with the zone.
	cache *replyCache
}

// rank orders a name's records: A, AAAA, SRV, the rest.
func rank(rr mdns.RR) int {
	switch rr.(type) {
	case *mdns.A:
		return 0
	case *mdns.AAAA:
		return 1
	case *mdns.SRV:
		return 2
	}
	return 3
}

// duplicate reports whether rr repeats x (same name, class and TTL by
// construction: the data decides).
func duplicate(x, rr mdns.RR) bool {
	switch n := rr.(type) {
	case *mdns.A:
		o, ok := x.(*mdns.A)
		return ok && o.A.Equal(n.A)
	case *mdns.SRV:
		o, ok := x.(*mdns.SRV)
		return ok && o.Port == n.Port && o.Target == n.Target && o.Priority == n.Priority && o.Weight == n.Weight
	}
	return false
}

// Len returns the number of records.
func (r *Records) Len() int { return r.count }

// Lookup returns the records of name (lowercase FQDN) and whether the name
// exists. The slice belongs to the zone: callers must not modify it.
func (r *Records) Lookup(name string) ([]mdns.RR, bool) {
	rrs, ok := r.names[name]
	return rrs, ok
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

// Build renders a snapshot as a zone. It is pure and deterministic.
func Build(snap *snapshot.Snapshot, opts BuildOptions) *Records {
	domain := strings.ToLower(strings.Trim(opts.Domain, ".")) + "."
	ttl := opts.TTL
	rule := ruleFor(opts.EnforceRFC952)
	r := &Records{Domain: domain, Generation: snap.Generation}
	r.names = map[string][]mdns.RR{}
	add := func(rr mdns.RR) {
		name := strings.ToLower(rr.Header().Name)
		rrs := r.names[name]
		k, at := rank(rr), len(rrs)
		for i, x := range rrs {
			if duplicate(x, rr) {
				return
			}
			if rank(x) > k && at == len(rrs) {
				at = i
			}
		}
		r.names[name] = slices.Insert(rrs, at, rr)
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
		tname, fname := rule.label(t.Name), rule.domainFrag(t.FrameworkName)
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
			if pn := rule.label(p.Name); pn != "" {
				addSRV("_"+pn+"._"+tname+"."+proto+"."+fname+"."+domain, target, p.Number)
			}
		}
	}
	r.cache = newReplyCache(len(r.names))
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
