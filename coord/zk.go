package coord

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// nodePrefix is the name prefix of the leader election nodes, as Mesos
// masters write them; ZooKeeper appends a 10-digit sequence number.
const nodePrefix = "json.info_"

// ParseZK splits a Mesos-style ZooKeeper URL, zk://host:port,host:port/path,
// into the servers and the (absolute, non-root) path. Credentials
// (zk://user:pass@...) are rejected: Keel does not do ZooKeeper digest
// authentication.
func ParseZK(url string) (servers []string, path string, err error) {
	rest, ok := strings.CutPrefix(url, "zk://")
	if !ok {
		return nil, "", fmt.Errorf("coord: zookeeper url %q does not start with zk://", url)
	}
	hosts, p, ok := strings.Cut(rest, "/")
	if !ok || strings.Trim(p, "/") == "" {
		return nil, "", fmt.Errorf("coord: zookeeper url %q has no path (zk://host:port/path)", url)
	}
	if strings.Contains(hosts, "@") {
		return nil, "", fmt.Errorf("coord: zookeeper url %q has credentials; authentication is not supported", url)
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, "", fmt.Errorf("coord: zookeeper url %q: server %q is not host:port", url, h)
		}
		servers = append(servers, h)
	}
	path = "/" + strings.Trim(p, "/")
	if strings.Contains(path, "//") {
		return nil, "", fmt.Errorf("coord: zookeeper url %q: empty path segment", url)
	}
	return servers, path, nil
}

// dial opens a ZooKeeper session and waits (bounded by ctx) until the
// session is established. The returned channel carries the session's later
// state events; it is closed after conn.Close.
// When last is not nil it records every read from the servers.
func dial(ctx context.Context, servers []string, timeout time.Duration, log *slog.Logger, last *contact) (*zk.Conn, <-chan zk.Event, error) {
	dialer := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, timeout)
		if err != nil || last == nil {
			return c, err
		}
		return contactConn{c, last}, nil
	}
	conn, events, err := zk.Connect(servers, timeout, zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false), zk.WithDialer(dialer))
	if err != nil {
		return nil, nil, fmt.Errorf("coord: connect %v: %w", servers, err)
	}
	for {
		select {
		case <-ctx.Done():
			conn.Close()
			return nil, nil, fmt.Errorf("coord: connect %v: %w", servers, context.Cause(ctx))
		case ev, ok := <-events:
			if !ok {
				return nil, nil, fmt.Errorf("coord: connect %v: connection closed", servers)
			}
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				return conn, events, nil
			}
		}
	}
}

// call runs one ZooKeeper request and gives up when ctx ends. The client
// library bounds each request by itself (reads time out after two thirds of
// the session timeout, and Close fails every pending request), so the
// goroutine left behind on cancellation always ends soon.
func call[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

// ensurePath creates path and its parents as persistent empty nodes.
func ensurePath(ctx context.Context, conn *zk.Conn, path string) error {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	cur := ""
	for _, p := range parts {
		cur += "/" + p
		_, err := call(ctx, func() (string, error) {
			return conn.Create(cur, nil, 0, zk.WorldACL(zk.PermAll))
		})
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("coord: create %s: %w", cur, err)
		}
	}
	return nil
}

// contact remembers when a session last heard from its servers: ZooKeeper
// expires a session a session timeout after it last heard from the client,
// which (pings being answered at once) is when the client last heard from
// it. The client library notices a dead connection only after two thirds of
// the timeout, so counting from its Disconnected event would overstay.
type contact struct {
	base time.Time
	ns   atomic.Int64 // monotonic time of the last read, since base
}

func newContact() *contact { return &contact{base: time.Now()} }

func (c *contact) touch() { c.ns.Store(int64(time.Since(c.base))) }

// since is the time since the last read.
func (c *contact) since() time.Duration { return time.Since(c.base) - time.Duration(c.ns.Load()) }

type contactConn struct {
	net.Conn
	last *contact
}

func (c contactConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.last.touch()
	}
	return n, err
}

// zkLogger sends the client library's messages to slog at debug level:
// every state change it logs is also an event that coord handles and logs
// itself.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zk")
}
