package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The UDP loop reads and writes up to udpBatch packets per system call
// (recvmmsg/sendmmsg on Linux) in a few reader goroutines, answers what
// the fast path can inline and queries to forward in goroutines of their
// own (at most maxForwarding at once; more are dropped).
const (
	udpBatch      = 32
	udpReadBuf    = 4096
	maxForwarding = 256
	socketBuffer  = 4 << 20
)

// batchConn is the batch I/O of ipv4.PacketConn and ipv6.PacketConn.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// serveUDP answers queries on pc until it is closed.
func (s *Server) serveUDP(ctx context.Context, pc *net.UDPConn) {
	_ = pc.SetReadBuffer(socketBuffer)
	_ = pc.SetWriteBuffer(socketBuffer)
	var bc batchConn = ipv4.NewPacketConn(pc)
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(pc)
	}
	readers := min(max(runtime.GOMAXPROCS(0), 1), 8)
	sem := make(chan struct{}, maxForwarding)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.readLoop(ctx, pc, bc, sem, &wg)
		}()
	}
	wg.Wait()
}

// udpWorker is one reader's buffers.
type udpWorker struct {
	s    *Server
	pc   *net.UDPConn
	in   []ipv4.Message
	out  []ipv4.Message
	outb [][]byte
	name [256]byte
	q    rawQuery
}

func (s *Server) readLoop(ctx context.Context, pc *net.UDPConn, bc batchConn, sem chan struct{}, wg *sync.WaitGroup) {
	w := &udpWorker{s: s, pc: pc, in: make([]ipv4.Message, udpBatch), out: make([]ipv4.Message, udpBatch), outb: make([][]byte, udpBatch)}
	for i := range w.in {
		w.in[i].Buffers = [][]byte{make([]byte, udpReadBuf)}
		w.out[i].Buffers = [][]byte{nil}
		w.outb[i] = make([]byte, 0, maxUDPSize)
	}
	for {
		n, err := bc.ReadBatch(w.in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("udp read", "err", err)
			continue
		}
		now := time.Now()
		nout := 0
		for i := range n {
			m := &w.in[i]
			addr, ok := m.Addr.(*net.UDPAddr)
			if !ok || m.Flags&syscall.MSG_TRUNC != 0 {
				continue
			}
			reply, fwd := w.handle(m.Buffers[0][:m.N], addr, now, w.outb[nout][:0])
			if fwd != nil {
				select {
				case sem <- struct{}{}:
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						s.forwardUDP(pc, fwd, addr, now)
					}()
				default:
					s.metrics.forwardErrors.Inc()
				}
				continue
			}
			if reply == nil {
				continue
			}
			if cap(reply) > cap(w.outb[nout]) {
				w.outb[nout] = reply[:0]
			}
			w.out[nout].Buffers[0] = reply
			w.out[nout].Addr = addr
			nout++
		}
		for sent := 0; sent < nout; {
			k, err := bc.WriteBatch(w.out[sent:nout], 0)
			if err != nil {
				// The first message failed (a pending ICMP error, say):
				// skip it, not the others.
				s.log.Debug("udp write", "err", err)
				k = 1
			}
			sent += k
		}
	}
}

// handle answers one packet: a reply, a query to forward, or neither (drop).
func (w *udpWorker) handle(pkt []byte, addr *net.UDPAddr, start time.Time, out []byte) ([]byte, *mdns.Msg) {
	s := w.s
	q := &w.q
	var reply []byte
	switch parseQuery(pkt, w.name[:], q) {
	case parseDrop:
		return nil, nil
	case parseFast:
		if r, ok := s.fastReply(s.zone.Load(), pkt, out, q); ok {
			reply = r
		}
	}
	if reply == nil {
		req := new(mdns.Msg)
		if err := req.Unpack(pkt); err != nil {
			// As miekg/dns's server: FORMERR with the header alone.
			reply = append(out, pkt[:12]...)
			reply[2] = 0x80 | reply[2]&0x78 // QR, opcode kept
			reply[3] = mdns.RcodeFormatError
			clear(reply[4:12])
			return s.limit(addr.IP, start, pkt, reply), nil
		}
		resp, upstreams := s.prepare(req, true, addr.IP)
		if upstreams != nil {
			return nil, req
		}
		b, err := resp.PackBuffer(out)
		if err != nil {
			return nil, nil
		}
		s.countGeneral(req, resp)
		reply = b
	}
	reply = s.limit(addr.IP, start, pkt, reply)
	if reply != nil {
		s.metrics.duration.Observe(time.Since(start).Seconds())
	}
	return reply, nil
}

// forwardUDP relays req upstream and sends the answer to addr.
func (s *Server) forwardUDP(pc *net.UDPConn, req *mdns.Msg, addr *net.UDPAddr, start time.Time) {
	resp := s.forward(req, true, s.upstreams(req.Question[0].Name))
	b, err := resp.Pack()
	if err != nil {
		return
	}
	s.countGeneral(req, resp)
	if b = s.limit(addr.IP, time.Now(), nil, b); b == nil {
		return
	}
	_ = pc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := pc.WriteToUDP(b, addr); err == nil {
		s.metrics.duration.Observe(time.Since(start).Seconds())
	}
}

// countGeneral counts a reply of the general path.
func (s *Server) countGeneral(req, resp *mdns.Msg) {
	qtype := "none"
	if len(req.Question) > 0 {
		qtype = mdns.TypeToString[req.Question[0].Qtype]
	}
	s.metrics.queries.WithLabelValues(qtype, mdns.RcodeToString[resp.Rcode]).Inc()
}

// limit applies response-rate limiting to reply, the answer to pkt (nil
// for forwarded answers: their slip is built from the reply itself): the
// reply, a truncated stand-in, or nil to drop.
func (s *Server) limit(ip net.IP, now time.Time, pkt, reply []byte) []byte {
	if s.rrl == nil {
		return reply
	}
	switch s.rrl.check(ip, now) {
	case drop:
		s.metrics.rateLimited.WithLabelValues("drop").Inc()
		return nil
	case slip:
		s.metrics.rateLimited.WithLabelValues("slip").Inc()
		if pkt == nil {
			pkt = reply
		}
		return truncated(pkt, reply[:0])
	}
	return reply
}

// truncated turns the message in pkt (a query, or a reply) into an empty
// reply with TC set, in out, which may share pkt's memory only if it
// starts at the same place. It returns nil when pkt's question does not
// parse.
func truncated(pkt, out []byte) []byte {
	if len(pkt) < 12 || binary.BigEndian.Uint16(pkt[4:]) != 1 {
		return nil
	}
	off := 12
	for {
		if off >= len(pkt) {
			return nil
		}
		l := int(pkt[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 {
			return nil
		}
		off += l
	}
	if off+4 > len(pkt) {
		return nil
	}
	off += 4
	out = append(out[:0], pkt[:off]...)
	out[2] = 0x80 | 0x02 | out[2]&0x79 // QR, TC; opcode and RD kept; AA cleared
	out[3] &= 0x10                     // CD kept, rcode NOERROR
	binary.BigEndian.PutUint16(out[6:], 0)
	binary.BigEndian.PutUint16(out[8:], 0)
	binary.BigEndian.PutUint16(out[10:], 0)
	return out
}
