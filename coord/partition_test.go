package coord

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/internal/zktest"
)

// blackhole is a TCP proxy on a real socket that can silently drop all
// traffic (a network partition: no reset, no FIN, just silence).
type blackhole struct {
	ln      net.Listener
	target  string
	dropped atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.wg.Go(b.accept)
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) addr() string { return b.ln.Addr().String() }

func (b *blackhole) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.track(c)
		if b.dropped.Load() {
			b.wg.Go(func() { io.Copy(io.Discard, c) })
			continue
		}
		up, err := net.DialTimeout("tcp", b.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		b.track(up)
		b.wg.Go(func() { b.pipe(up, c) })
		b.wg.Go(func() { b.pipe(c, up) })
	}
}

func (b *blackhole) track(c net.Conn) {
	b.mu.Lock()
	b.conns = append(b.conns, c)
	b.mu.Unlock()
}

// pipe copies src to dst until src closes, dropping what it reads while
// the proxy is partitioned.
func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.dropped.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// TestPartitionedLeaderStepsDownBeforeSuccessor partitions the leader from
// ZooKeeper (silently: its TCP connection just goes quiet). ZooKeeper
// expires its session and another master takes over; the partitioned
// leader must have ended its term by then, not two thirds of a session
// timeout later when its client library notices.
func TestPartitionedLeaderStepsDownBeforeSuccessor(t *testing.T) {
	leakcheck.Check(t)
	zks := zktest.Start(t)
	proxy := newBlackhole(t, zks.Addr(0))
	const timeout = 3 * time.Second
	a, _ := candidate(t, ElectionConfig{ZK: "zk://" + proxy.addr() + "/keel", Info: info("a", 1), SessionTimeout: timeout})
	ta := leads(t, a)
	b, _ := candidate(t, ElectionConfig{ZK: "zk://" + zks.ConnectString() + "/keel", Info: info("b", 2), SessionTimeout: timeout})
	if ev := next(t, b); ev.Leader {
		t.Fatal("b leads")
	}
	start := time.Now()
	proxy.dropped.Store(true)

	var aEnded time.Time
	cause := make(chan error, 1)
	go func() {
		<-ta.Context().Done()
		aEnded = time.Now()
		cause <- context.Cause(ta.Context())
	}()
	tb := leads(t, b)
	bLeads := time.Now()
	var err error
	select {
	case err = <-cause:
	case <-time.After(within):
		t.Fatal("partitioned leader still leads after its successor took over")
	}
	if !errors.Is(err, errDisconnected) {
		t.Errorf("cause %v", err)
	}
	t.Logf("a stepped down %s after the partition, b led %s after it", aEnded.Sub(start), bLeads.Sub(start))
	if aEnded.After(bLeads) {
		t.Errorf("two leaders for %s", aEnded.Sub(bLeads))
	}
	// The last ping may have been answered up to a third of the timeout
	// before the partition.
	if aEnded.Sub(start) < timeout/2 {
		t.Errorf("a stepped down after %s, before its session could expire", aEnded.Sub(start))
	}
	if !tb.Leading() {
		t.Error("b not leading")
	}
}
