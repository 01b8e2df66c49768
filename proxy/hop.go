package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Header names are case-insensitive (RFC 9110 5.1), while the servers'
// header maps keep them as they came (DisableHeaderNamesNormalizing, which
// the proxy needs to pass names through unchanged) and delete only an
// exact spelling. So the proxy finds the headers it must remove by one
// case-insensitive pass over them and deletes each by its own spelling:
// a "keep-alive" or "x-forwarded-proto" in lower case is treated exactly
// like its canonical form.

// hopNames are the hop-by-hop headers (RFC 9110 7.6.1), lowercase, that
// never cross the proxy in either direction.
var hopNames = [...]string{"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"}

// forwardedNames are the X-Forwarded-* request headers the proxy sets
// itself: a client's own, in any spelling, are replaced (X-Forwarded-For
// is extended).
var forwardedNames = [...]string{"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port"}

var trailerName = []byte("Trailer")

// nameList holds byte slices, the first few without allocating. It
// keeps no pointer into itself, so that it can live on the stack.
type nameList struct {
	n     int
	fixed [8][]byte
	more  [][]byte
}

func (l *nameList) add(b []byte) {
	if l.n < len(l.fixed) {
		l.fixed[l.n] = b
		l.n++
		return
	}
	l.more = append(l.more, b)
}

func (l *nameList) len() int { return l.n + len(l.more) }

func (l *nameList) at(i int) []byte {
	if i < l.n {
		return l.fixed[i]
	}
	return l.more[i-l.n]
}

// hopScan is what one pass over a request's header block found.
type hopScan struct {
	drop    nameList // exact spellings of the headers to delete
	conn    nameList // values of Connection headers
	xff     nameList // values of X-Forwarded-For headers, in order
	upgrade []byte   // the Upgrade header's value
}

// websocket reports whether the request asks for a WebSocket upgrade:
// Connection names upgrade and Upgrade offers websocket.
func (s *hopScan) websocket() bool {
	if len(s.upgrade) == 0 || !hasToken(s.upgrade, "websocket") {
		return false
	}
	for i := range s.conn.len() {
		if hasToken(s.conn.at(i), "upgrade") {
			return true
		}
	}
	return false
}

// scanRequest walks raw, a request's header block as it came off the
// wire (checkHeaders has vetted it), and records the hop-by-hop and
// X-Forwarded-* headers, in any spelling, and those the Connection header
// names. The slices it records point into raw.
func scanRequest(raw []byte, s *hopScan) {
	eachHeader(raw, func(name, value []byte) {
		switch {
		case isOneOf(name, hopNames[:]):
			s.drop.add(name)
			switch {
			case equalFold(name, "connection"):
				s.conn.add(value)
			case equalFold(name, "upgrade"):
				s.upgrade = value
			case equalFold(name, "trailer"):
				// fasthttp keeps Trailer apart, under its canonical name,
				// however the client spelled it.
				s.drop.add(trailerName)
			}
		case isOneOf(name, forwardedNames[:]):
			s.drop.add(name)
			if equalFold(name, "x-forwarded-for") {
				s.xff.add(value)
			}
		}
	})
	if namesMore(&s.conn) {
		eachHeader(raw, func(name, _ []byte) {
			if connectionNames(&s.conn, name) {
				s.drop.add(name)
			}
		})
	}
}

// cleanResponse deletes a response's hop-by-hop headers, in any
// spelling, and those its Connection header names.
func cleanResponse(h *fasthttp.ResponseHeader) {
	var drop, conn nameList
	for k, v := range h.All() {
		if isOneOf(k, hopNames[:]) {
			drop.add(k)
			if equalFold(k, "connection") {
				conn.add(v)
			}
		}
	}
	if namesMore(&conn) {
		for k := range h.All() {
			if connectionNames(&conn, k) {
				drop.add(k)
			}
		}
	}
	// Deleting only after the walk: the names point into the header's
	// own storage, which deletion reorders but does not overwrite.
	for i := range drop.len() {
		h.DelBytes(drop.at(i))
	}
}

// namesMore reports whether Connection values name any header beyond the
// connection options close and keep-alive.
func namesMore(conn *nameList) bool {
	for i := range conn.len() {
		for item := range bytes.SplitSeq(conn.at(i), []byte{','}) {
			item = trimOWS(item)
			if len(item) > 0 && !equalFold(item, "close") && !equalFold(item, "keep-alive") {
				return true
			}
		}
	}
	return false
}

// connectionNames reports whether a Connection value lists name. The
// headers that frame the message (and Host) are never removed this way:
// a client must not be able to make the backend read a different message.
func connectionNames(conn *nameList, name []byte) bool {
	if equalFold(name, "host") || equalFold(name, "content-length") || equalFold(name, "transfer-encoding") {
		return false
	}
	for i := range conn.len() {
		if hasToken(conn.at(i), string(name)) {
			return true
		}
	}
	return false
}

// eachHeader calls fn with the name and trimmed value of every header
// line of raw, up to the blank line.
func eachHeader(raw []byte, fn func(name, value []byte)) {
	for len(raw) > 0 {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			line, raw = raw, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			return
		}
		if colon := bytes.IndexByte(line, ':'); colon > 0 {
			fn(line[:colon], trimOWS(line[colon+1:]))
		}
	}
}

func isOneOf(name []byte, lower []string) bool {
	for _, l := range lower {
		if equalFold(name, l) {
			return true
		}
	}
	return false
}

// equalFold compares an ASCII name with a lowercase one.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// trimOWS strips optional whitespace (spaces and tabs, RFC 9110 5.6.3)
// from both ends of b: bytes.Trim with a cutset builds its set on every
// call, on the path of every header of every request.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
