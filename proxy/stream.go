package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// smallBody is the largest body kept whole in memory. It matches what
// fasthttp's server reads ahead of a streamed request body, so a request
// body up to this size is already complete when the handler runs and is
// forwarded (and retried) from memory; a response body up to this size is
// read whole off the backend connection, which goes straight back to the
// pool. Anything larger, chunked or delimited by the connection's close
// streams through in both directions.
const smallBody = 8 << 10

// maxInterim bounds the 1xx responses skipped before the final one.
const maxInterim = 16

// splicePiece is how much of a known-length response body is copied
// between two extensions of the connections' deadlines. On Linux the copy
// between two TCP connections is a splice and never enters user space.
const splicePiece = 4 << 20

var errInterim = errors.New("proxy: too many 1xx responses from backend")

// errClientBody is a request body that broke off or was malformed
// (chunk framing) while it streamed: the client's fault, answered 400.
var errClientBody = errors.New("proxy: request body")

// prepareBody decides how the request body goes to the backend and
// reports whether it streams. A body that arrived whole with its headers
// (up to smallBody) is put back in memory, so that it can be sent again
// on a retry. A chunked body has its first chunk read before any backend
// is involved, so that a malformed one is refused, and when that was the
// whole body, it is kept in memory too.
func prepareBody(req *fasthttp.Request) (bool, error) {
	if !req.IsBodyStream() {
		return false, nil
	}
	cl := req.Header.ContentLength()
	if cl >= 0 && cl <= smallBody {
		// The server read the whole body ahead into the request's body
		// buffer; dropping the stream leaves the buffer as the body.
		_ = req.CloseBodyStream()
		return false, nil
	}
	if cl != -1 {
		return true, nil
	}
	src := req.BodyStream()
	head := make([]byte, smallBody)
	n, err := src.Read(head)
	switch {
	case err == io.EOF:
		_ = req.CloseBodyStream()
		req.SetBody(head[:n]) // sent with a Content-Length
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%w: %w", errClientBody, err)
	}
	// SetBodyStream only detaches src: the server still owns and drains it.
	req.SetBodyStream(io.MultiReader(bytes.NewReader(head[:n]), src), -1)
	return true, nil
}

// forward sends req on a connection of hc and reads the backend's answer
// into resp, in at most timeout for a body in memory; a streamed request
// body instead only has to keep moving, and the backend then has timeout
// to answer. A response body up to smallBody is read whole; a larger,
// chunked or close-delimited one is left on the connection as resp's body
// stream, which the server copies to the client (chunked unless its length
// is known) and whose Close puts the connection back in the pool. client
// is the client's connection (nil in benchmarks), whose deadlines follow
// a streamed body too.
func forward(client net.Conn, hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, timeout time.Duration) error {
	if timeout <= 0 {
		return fasthttp.ErrTimeout
	}
	if string(req.URI().Scheme()) == "https" {
		return fasthttp.ErrHostClientRedirectToDifferentScheme
	}
	start := time.Now()
	deadline := start.Add(timeout)
	resp.Reset()
	req.URI().DisablePathNormalizing = true
	cc, err := hc.AcquireConn(timeout, req.ConnectionClose())
	if err != nil {
		return err
	}
	conn := cc.Conn()
	streamed := req.IsBodyStream()
	readSet := false // the read deadline is already deadline
	var up *upload
	if streamed {
		// Each read from the client extends both sides' deadlines: the
		// upload has no total time limit, only an idle one.
		var ok bool
		if up, ok = req.BodyStream().(*upload); ok {
			up.backend = conn // a retry after a failed dial
		} else {
			up = &upload{src: req.BodyStream(), client: client, backend: conn, dl: deadlines{idle: timeout}}
			req.SetBodyStream(up, req.Header.ContentLength())
		}
	} else {
		wd := deadline
		if hc.WriteTimeout > 0 && start.Add(hc.WriteTimeout).Before(wd) {
			wd = start.Add(hc.WriteTimeout)
		}
		set := conn.SetWriteDeadline
		if wd.Equal(deadline) {
			// One call, and one runtime timer for both directions.
			set, readSet = conn.SetDeadline, true
		}
		if err := set(wd); err != nil {
			hc.CloseConn(cc)
			return err
		}
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		if up != nil && up.err != nil {
			return fmt.Errorf("%w: %w", errClientBody, up.err)
		}
		return backendErr(err)
	}
	if streamed {
		deadline = time.Now().Add(timeout) // the backend's time to answer starts after the body
	}
	if !readSet {
		if err := conn.SetReadDeadline(deadline); err != nil {
			hc.CloseConn(cc)
			return err
		}
	}
	if hc.DisableHeaderNamesNormalizing {
		resp.Header.DisableNormalizing()
	}
	br := hc.AcquireReader(conn)
	fail := func(err error) error {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return backendErr(err)
	}
	for i := 0; ; i++ {
		if err := resp.Header.Read(br); err != nil {
			return fail(err)
		}
		if code := resp.StatusCode(); code >= 200 || code == fasthttp.StatusSwitchingProtocols {
			break
		}
		if i == maxInterim {
			return fail(errInterim)
		}
	}
	closeConn := req.ConnectionClose() || resp.ConnectionClose()
	code := resp.StatusCode()
	cl := resp.Header.ContentLength()
	switch {
	case req.Header.IsHead() || code == fasthttp.StatusNoContent || code == fasthttp.StatusNotModified:
		resp.SkipBody = req.Header.IsHead()
	case code == fasthttp.StatusSwitchingProtocols:
		closeConn = true // no longer HTTP; upgrades go through tunnel instead
	case cl >= 0 && cl <= smallBody:
		if err := resp.ReadBody(br, 0); err != nil {
			return fail(err)
		}
	default:
		b := &backendBody{hc: hc, br: br, conn: conn, client: client, dl: deadlines{idle: timeout},
			remaining: int64(cl), closeConn: closeConn || cl == -2}
		// fasthttp does not name its connection type: only a closure can
		// keep it.
		b.release = func(reuse bool) {
			if reuse {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		}
		switch cl {
		case -1:
			b.chunks = httputil.NewChunkedReader(br)
		case -2:
			b.remaining = -1
		}
		if cl < 0 {
			cl = -1 // the client gets chunked encoding
		}
		resp.SetBodyStream(b, cl)
		// The headers go out before the body starts, whenever it does;
		// WriteTo relies on this to write to the client's connection.
		resp.ImmediateHeaderFlush = true
		return nil
	}
	hc.ReleaseReader(br)
	if closeConn {
		hc.CloseConn(cc)
	} else {
		hc.ReleaseConn(cc)
	}
	return nil
}

// backendErr maps errors as fasthttp's client does: any timeout is
// fasthttp.ErrTimeout, and a connection closed before the response is
// fasthttp.ErrConnectionClosed.
func backendErr(err error) error {
	var te interface{ Timeout() bool }
	switch {
	case errors.As(err, &te) && te.Timeout():
		return fasthttp.ErrTimeout
	case errors.Is(err, io.EOF):
		return fasthttp.ErrConnectionClosed
	}
	return err
}

// deadlines pushes a connection pair's deadlines forward as a body moves,
// at most once per eighth of idle, so that a transfer times out only when
// it stalls.
type deadlines struct {
	idle     time.Duration
	extended time.Time
}

func (d *deadlines) extend(read, write net.Conn) error {
	now := time.Now()
	if now.Sub(d.extended) < d.idle/8 {
		return nil
	}
	d.extended = now
	if read != nil {
		if err := read.SetReadDeadline(now.Add(d.idle)); err != nil {
			return err
		}
	}
	if write != nil {
		if err := write.SetWriteDeadline(now.Add(d.idle)); err != nil {
			return err
		}
	}
	return nil
}

// upload is a request body streaming from the client to the backend.
type upload struct {
	src             io.Reader
	client, backend net.Conn
	dl              deadlines
	err             error // of the client's side, if it failed
}

// Read reads from the client's body, with both connections' deadlines
// extended.
func (u *upload) Read(p []byte) (int, error) {
	if err := u.dl.extend(u.client, u.backend); err != nil {
		return 0, err
	}
	n, err := u.src.Read(p)
	if err != nil && err != io.EOF {
		u.err = err
	}
	return n, err
}

// endRequest decrements a count of requests in progress (of a route, of
// a backend) now, or, when resp's body still streams from its backend,
// once that body is closed.
func endRequest(n *atomic.Int64, resp *fasthttp.Response) {
	if b, ok := resp.BodyStream().(*backendBody); ok && b.hc != nil {
		b.counts = append(b.counts, n)
		return
	}
	n.Add(-1)
}

// backendBody is a response body left on its backend connection.
type backendBody struct {
	counts  []*atomic.Int64      // decremented on Close: see endRequest
	hc      *fasthttp.HostClient // nil once closed
	release func(reuse bool)     // gives the connection back to hc
	br      *bufio.Reader
	conn    net.Conn
	client  net.Conn // nil in benchmarks
	dl      deadlines
	lr      io.LimitedReader

	remaining int64     // bytes left of a known length, -1 = until close
	chunks    io.Reader // the chunked decoder, nil unless chunked
	eof       bool      // the body ended where its framing says
	failed    bool      // the connection is at an unknown point
	closeConn bool
}

var errShortBody = errors.New("proxy: backend closed the connection inside the body")

// Read reads the body, decoding chunks.
func (b *backendBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.hc == nil {
		return 0, io.ErrClosedPipe
	}
	if err := b.dl.extend(b.conn, b.client); err != nil {
		b.failed = true
		return 0, err
	}
	var n int
	var err error
	switch {
	case b.chunks != nil:
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			if err = skipTrailer(b.br); err == nil {
				b.eof = true
				err = io.EOF
			}
		}
	case b.remaining < 0:
		n, err = b.br.Read(p)
		if err == io.EOF {
			b.eof = true
		}
	default:
		if b.remaining == 0 {
			b.eof = true
			return 0, io.EOF
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.br.Read(p)
		b.remaining -= int64(n)
		switch {
		case err == io.EOF && b.remaining > 0:
			err = errShortBody
		case err == nil && b.remaining == 0:
			b.eof = true
			err = io.EOF
		}
	}
	if err != nil && err != io.EOF {
		b.failed = true
	}
	return n, err
}

// SupportsBodyWriteTo tells fasthttp to use WriteTo for a known length.
func (b *backendBody) SupportsBodyWriteTo() bool { return b.chunks == nil && b.remaining >= 0 }

// WriteTo copies a known-length body: first what was read ahead with the
// headers, then straight from the connection. fasthttp calls it with its
// buffered writer to the client empty (the headers were flushed), so it
// writes to the client's connection itself: the bytes move as they
// arrive, and between two TCP connections the kernel splices them. w
// serves only without a client connection (benchmarks).
func (b *backendBody) WriteTo(w io.Writer) (int64, error) {
	if !b.SupportsBodyWriteTo() {
		return io.Copy(w, readerOnly{b})
	}
	if b.client != nil {
		w = b.client
	}
	var total int64
	if n := int64(b.br.Buffered()); n > 0 && b.remaining > 0 {
		head, _ := b.br.Peek(int(min(n, b.remaining)))
		m, err := w.Write(head)
		_, _ = b.br.Discard(m)
		total += int64(m)
		b.remaining -= int64(m)
		if err != nil {
			b.failed = true
			return total, err
		}
	}
	for b.remaining > 0 {
		if err := b.dl.extend(b.conn, b.client); err != nil {
			b.failed = true
			return total, err
		}
		b.lr = io.LimitedReader{R: b.conn, N: min(b.remaining, splicePiece)}
		var n int64
		var err error
		if rf, ok := w.(io.ReaderFrom); ok {
			n, err = rf.ReadFrom(&b.lr)
		} else {
			n, err = io.Copy(w, &b.lr)
		}
		total += n
		b.remaining -= n
		if err == nil && n == 0 {
			err = errShortBody
		}
		if err != nil {
			b.failed = true
			return total, err
		}
	}
	b.eof = true
	return total, nil
}

// Close puts the connection back in the pool if the body ended cleanly,
// else closes it.
func (b *backendBody) Close() error {
	hc := b.hc
	if hc == nil {
		return nil
	}
	b.hc = nil
	for _, n := range b.counts {
		n.Add(-1)
	}
	b.counts = nil
	reuse := b.eof && !b.failed && !b.closeConn && b.br.Buffered() == 0
	hc.ReleaseReader(b.br)
	b.br = nil
	b.release(reuse)
	return nil
}

// readerOnly hides a reader's WriteTo from io.Copy.
type readerOnly struct{ io.Reader }

// skipTrailer reads the trailer section after the last chunk, up to and
// including the empty line. Trailer fields are dropped.
func skipTrailer(br *bufio.Reader) error {
	for i := 0; ; i++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("proxy: backend chunk trailer: %w", err)
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return nil
		}
		if i == 64 {
			return errors.New("proxy: backend chunk trailer: too many fields")
		}
	}
}
