package dns

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The fast path answers the common UDP query (one question under the
// domain, at most an OPT record, labels of letters, digits, '-' and '_')
// straight from the packet's bytes: a name the zone lacks gets NXDOMAIN
// from a template; any other question gets a reply that the general path
// built once, packed, and cached in the zone, with only the ID, the RD and
// CD bits and the question's case patched in. A cached reply holds up to
// maxVariants packings with different answer orders, one picked at random
// per query, so clients still spread over the tasks. The cache belongs to
// the immutable zone: a zone swap drops it. Everything else goes to the
// general path, which the differential test holds the fast path to.

const (
	// maxVariants is how many answer orders a cached reply keeps.
	maxVariants = 8
	// cacheShards spreads the cache's locks.
	cacheShards = 32
	// maxQuery is the longest query the fast path parses.
	maxQuery = 512
)

// replyCache is a zone's cache of packed replies, filled on first use.
type replyCache struct {
	shards [cacheShards]cacheShard
	size   atomic.Int64
	limit  int64

	soaOnce sync.Once
	soa     []byte // the SOA record packed without compression

	diff diffMemo // the last /v1/watch event into this zone
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*cachedReply
}

// cachedReply is one question's reply, packed in several answer orders.
type cachedReply struct {
	variants [][]byte
	// patchable: the packing has no compression pointers, so the question
	// name can take the client's case without changing any other name.
	patchable bool
	queries   prometheus.Counter
}

func newReplyCache(names int) *replyCache {
	c := &replyCache{limit: int64(max(4096, 4*names))}
	for i := range c.shards {
		c.shards[i].m = map[string]*cachedReply{}
	}
	return c
}

func shardOf(key []byte) int {
	h := uint32(2166136261)
	for _, b := range key {
		h = (h ^ uint32(b)) * 16777619
	}
	return int(h % cacheShards)
}

func (c *replyCache) get(key []byte) *cachedReply {
	sh := &c.shards[shardOf(key)]
	sh.mu.RLock()
	r := sh.m[string(key)]
	sh.mu.RUnlock()
	return r
}

// full reports whether the cache takes no more replies: it is bounded,
// and names times query types times sizes is not.
func (c *replyCache) full() bool { return c.size.Load() >= c.limit }

// put stores r unless the cache is full.
func (c *replyCache) put(key []byte, r *cachedReply) {
	if c.full() {
		return
	}
	sh := &c.shards[shardOf(key)]
	sh.mu.Lock()
	if _, ok := sh.m[string(key)]; !ok {
		sh.m[string(key)] = r
		c.size.Add(1)
	}
	sh.mu.Unlock()
}

// rawQuery is what the fast path reads from a packet.
type rawQuery struct {
	qEnd   int    // end of the question section
	name   []byte // the question name, dotted and lowercase
	lower  bool   // the wire name was lowercase already
	qtype  uint16
	qclass uint16
	edns   bool
	size   uint16 // the client's EDNS UDP size
}

// parse outcomes.
const (
	parseFast    = iota // the fast path may answer
	parseGeneral        // the general path must
	parseDrop           // not a query: never answer
)

// parseQuery reads pkt into q, writing the dotted name into buf.
func parseQuery(pkt, buf []byte, q *rawQuery) int {
	if len(pkt) < 12 {
		return parseDrop
	}
	if pkt[2]&0x80 != 0 { // a response: answering could loop
		return parseDrop
	}
	if len(pkt) > maxQuery || pkt[2]&0x78 != 0 || // opcode QUERY only
		binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return parseGeneral
	}
	ar := binary.BigEndian.Uint16(pkt[10:])
	if ar > 1 {
		return parseGeneral
	}
	off := 12
	name := buf[:0]
	lower := true
	for {
		if off >= len(pkt) {
			return parseGeneral
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(pkt) || len(name)+l+1 > 254 {
			return parseGeneral
		}
		for _, c := range pkt[off : off+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
				lower = false
			default:
				return parseGeneral
			}
			name = append(name, c)
		}
		name = append(name, '.')
		off += l
	}
	if len(name) == 0 || off+4 > len(pkt) {
		return parseGeneral
	}
	q.name, q.lower = name, lower
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	q.qclass = binary.BigEndian.Uint16(pkt[off+2:])
	off += 4
	q.qEnd = off
	q.edns, q.size = false, 0
	if ar == 1 {
		// OPT: root name, type 41, class = UDP size, TTL, RDATA.
		if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != mdns.TypeOPT {
			return parseGeneral
		}
		q.edns, q.size = true, binary.BigEndian.Uint16(pkt[off+3:])
		rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
		off += 11
		if !validOptions(pkt[off:min(off+rdlen, len(pkt))]) || off+rdlen != len(pkt) {
			return parseGeneral
		}
		off += rdlen
	}
	if off != len(pkt) {
		return parseGeneral
	}
	return parseFast
}

// validOptions reports whether b is a well-formed list of EDNS options.
func validOptions(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		l := 4 + int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b) {
			return false
		}
		b = b[l:]
	}
	return true
}

// inDomain reports whether the dotted lowercase name is domain or under it.
func inDomain(name []byte, domain string) bool {
	if len(name) < len(domain) || string(name[len(name)-len(domain):]) != domain {
		return false
	}
	return len(name) == len(domain) || name[len(name)-len(domain)-1] == '.'
}

// fastReply appends the reply to pkt to out from zone z, or reports false
// when the general path must answer.
func (s *Server) fastReply(z *Records, pkt, out []byte, q *rawQuery) ([]byte, bool) {
	if !inDomain(q.name, z.Domain) {
		return nil, false
	}
	cacheable := q.qclass == mdns.ClassINET && q.qtype != mdns.TypeANY
	var kb [maxQuery]byte
	key := append(kb[:0], q.name...)
	size := uint16(0)
	if q.edns {
		size = min(max(q.size, mdns.MinMsgSize), maxUDPSize)
	}
	key = binary.BigEndian.AppendUint16(key, q.qtype)
	key = binary.BigEndian.AppendUint16(key, size)
	var r *cachedReply
	if cacheable {
		r = z.cache.get(key) // a hit means the name exists: one lookup
	}
	if r == nil {
		if _, ok := z.names[string(q.name)]; !ok {
			return s.nxReply(z, pkt, out, q)
		}
		if !cacheable || z.cache.full() {
			return nil, false // a full cache: one general build, not eight
		}
		if r = s.buildCached(z, string(q.name), q.qtype, q.edns, size); r == nil {
			return nil, false
		}
		z.cache.put(key, r)
	}
	if !q.lower && !r.patchable {
		return nil, false
	}
	v := r.variants[0]
	if len(r.variants) > 1 {
		v = r.variants[rand.IntN(len(r.variants))]
	}
	out = append(out, v...)
	copy(out[0:2], pkt[0:2])            // ID
	out[2] = out[2]&^0x01 | pkt[2]&0x01 // RD
	out[3] = out[3]&^0x10 | pkt[3]&0x10 // CD
	if !q.lower {
		copy(out[12:q.qEnd-4], pkt[12:q.qEnd-4]) // the question's case
	}
	r.queries.Inc()
	return out, true
}

// buildCached packs the general path's reply to one question in as many
// distinct answer orders as there are, up to maxVariants; nil if it does
// not pack.
func (s *Server) buildCached(z *Records, name string, qtype uint16, edns bool, size uint16) *cachedReply {
	req := new(mdns.Msg)
	req.SetQuestion(name, qtype)
	req.Id, req.RecursionDesired = 0, false
	if edns {
		req.SetEdns0(size, false)
	}
	r := &cachedReply{patchable: true}
	seen := map[string]bool{}
	target := 1
	for i := 0; i < 4*target && len(r.variants) < target; i++ {
		rng := rand.New(rand.NewPCG(uint64(i), 0x6b65656c))
		resp := s.authoritative(z, req, true, rng.Shuffle)
		if i == 0 {
			// n answers have n! orders.
			for n := len(resp.Answer); n > 1 && target < maxVariants; n-- {
				target = min(target*n, maxVariants)
			}
			r.queries = s.metrics.queries.WithLabelValues(mdns.TypeToString[qtype], mdns.RcodeToString[resp.Rcode])
		}
		b, err := resp.Pack()
		if err != nil {
			return nil
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			r.variants = append(r.variants, b)
			r.patchable = r.patchable && !resp.Compress
		}
	}
	return r
}

// nxReply appends NXDOMAIN for a name the zone lacks: the question as
// asked, the SOA, and OPT when the query had one.
func (s *Server) nxReply(z *Records, pkt, out []byte, q *rawQuery) ([]byte, bool) {
	c := z.cache
	c.soaOnce.Do(func() {
		b := make([]byte, 512)
		n, err := mdns.PackRR(z.SOA, b, 0, nil, false)
		if err == nil {
			c.soa = b[:n]
		}
	})
	n := q.qEnd + len(c.soa)
	if q.edns {
		n += 11
	}
	if c.soa == nil || n > mdns.MinMsgSize {
		return nil, false
	}
	out = append(out, pkt[:q.qEnd]...)
	out[2] = 0x80 | 0x04 | pkt[2]&0x01 // QR, AA, RD
	out[3] = pkt[3]&0x10 | mdns.RcodeNameError
	if len(s.cfg.Resolvers) > 0 {
		out[3] |= 0x80 // RA
	}
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 1)
	binary.BigEndian.PutUint16(out[10:], 0)
	out = append(out, c.soa...)
	if q.edns {
		binary.BigEndian.PutUint16(out[10:], 1)
		out = append(out, 0, 0, 41, maxUDPSize>>8, maxUDPSize&0xff, 0, 0, 0, 0, 0, 0)
	}
	s.nxCounter(q.qtype).Inc()
	return out, true
}

// nxCounter is the queries counter for NXDOMAIN by qtype, resolved once.
func (s *Server) nxCounter(qtype uint16) prometheus.Counter {
	if int(qtype) >= len(s.nxCounters) {
		return s.metrics.queries.WithLabelValues(mdns.TypeToString[qtype], mdns.RcodeToString[mdns.RcodeNameError])
	}
	p := &s.nxCounters[qtype]
	if c := p.Load(); c != nil {
		return c.Counter
	}
	c := &counterBox{s.metrics.queries.WithLabelValues(mdns.TypeToString[qtype], mdns.RcodeToString[mdns.RcodeNameError])}
	p.Store(c)
	return c.Counter
}

type counterBox struct{ prometheus.Counter }
