//go:build !linux

package proxy

import (
	"errors"
	"net"
)

// DefaultTCPEngine is the engine of a Config that names none: the
// goroutine path, as the loop needs Linux.
const DefaultTCPEngine = "go"

var errNoTCPLoop = errors.New("proxy: the loop TCP engine needs Linux (epoll); use the go engine")

// tloop is the TCP service port loop, which only Linux has.
type tloop struct{}

// tlisten is a listener of the loop.
type tlisten struct{}

func newTLoop(p *Proxy) (*tloop, error) { return nil, errNoTCPLoop }

func (t *tloop) listen(key string, ln *net.TCPListener) (*tlisten, error) {
	ln.Close()
	return nil, errNoTCPLoop
}

func (t *tloop) unlisten(tl *tlisten) {}

func (t *tloop) stop() {}

func (t *tloop) run() {}
