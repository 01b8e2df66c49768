package proxy

import "bytes"

// Request header limits (HAProxy's defaults: tune.bufsize 16 KiB,
// tune.http.maxhdr 101).
const (
	maxHeaderBytes = 16 << 10
	maxHeaderLines = 100
)

// Reasons a request is refused before routing, as the
// keel_proxy_rejected_requests_total reason label.
const (
	rejectTooLarge     = "header_too_large"
	rejectTooMany      = "too_many_headers"
	rejectBadName      = "bad_header_name"
	rejectBadValue     = "bad_header_value"
	rejectFolded       = "folded_header"
	rejectCLAndTE      = "content_length_and_transfer_encoding"
	rejectCLConflict   = "conflicting_content_length"
	rejectBadCL        = "bad_content_length"
	rejectBadTE        = "bad_transfer_encoding"
	rejectReasonsCount = 9
)

var rejectReasons = [rejectReasonsCount]string{rejectTooLarge, rejectTooMany, rejectBadName, rejectBadValue, rejectFolded,
	rejectCLAndTE, rejectCLConflict, rejectBadCL, rejectBadTE}

// tchar marks the characters of an RFC 9110 token (a header name).
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// checkHeaders inspects the raw header block of a request as it came off
// the wire (fasthttp's RawHeaders, without the request line) and returns
// the status to refuse it with and why, or 0. It closes the request
// smuggling doors a lenient parser leaves open: a request whose framing
// the proxy and the backend could read differently is never forwarded.
// It does not allocate.
func checkHeaders(raw []byte) (int, string) {
	if len(raw) > maxHeaderBytes {
		return 431, rejectTooLarge
	}
	var lines int
	var cl []byte // the first Content-Length value
	var haveCL, haveTE bool
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		var line []byte
		if i < 0 {
			line, raw = raw, nil
		} else {
			line, raw = raw[:i], raw[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break // end of headers
		}
		if lines++; lines > maxHeaderLines {
			return 431, rejectTooMany
		}
		if line[0] == ' ' || line[0] == '\t' {
			return 400, rejectFolded
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 400, rejectBadName
		}
		name, value := line[:colon], line[colon+1:]
		for _, c := range name {
			if !tchar[c] {
				return 400, rejectBadName // includes whitespace before the colon
			}
		}
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return 400, rejectBadValue
			}
		}
		value = trimOWS(value)
		switch {
		case len(name) == len("Content-Length") && bytes.EqualFold(name, []byte("Content-Length")):
			// A list ("5, 5") or repeated header is only acceptable when
			// every member is the same number (RFC 9110 8.6).
			for v := range bytes.SplitSeq(value, []byte{','}) {
				v = trimOWS(v)
				if !digits(v) {
					return 400, rejectBadCL
				}
				if haveCL && !bytes.Equal(trimZeros(v), trimZeros(cl)) {
					return 400, rejectCLConflict
				}
				cl, haveCL = v, true
			}
		case len(name) == len("Transfer-Encoding") && bytes.EqualFold(name, []byte("Transfer-Encoding")):
			// Only a single "chunked" is forwarded: any other coding, or
			// chunked applied twice, is a framing the backend might read
			// differently.
			if haveTE || !bytes.EqualFold(value, []byte("chunked")) {
				return 400, rejectBadTE
			}
			haveTE = true
		}
	}
	if haveCL && haveTE {
		return 400, rejectCLAndTE
	}
	return 0, ""
}

func digits(b []byte) bool {
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func trimZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == '0' {
		b = b[1:]
	}
	return b
}
