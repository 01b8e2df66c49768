//go:build !linux

package proxy

import (
	"context"
	"errors"
	"net"

	"github.com/valyala/fasthttp"
)

// DefaultHTTPEngine is the engine of a Config that names none: fasthttp,
// as the loop needs Linux.
const DefaultHTTPEngine = "fasthttp"

// errNoLoop is the loop HTTP engine asked for where it does not exist.
var errNoLoop = errors.New("proxy: the loop HTTP engine needs Linux (epoll); use the fasthttp engine")

// loop is the epoll engine, which only Linux has.
type loop struct{}

// newLoop reports that the loop engine is unavailable.
func newLoop(p *Proxy, ln *net.TCPListener, fallback *fasthttp.Server) (*loop, error) {
	return nil, errNoLoop
}

func (l *loop) run(ctx context.Context) error { return errNoLoop }
