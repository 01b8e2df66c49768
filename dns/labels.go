package dns

import (
	"bytes"
	"strings"
)

// labelRule is how a name becomes a DNS label: Mesos-DNS's two rule
// sets, RFC 1123 (its default) and RFC 952 (its EnforceRFC952).
type labelRule struct {
	max     int    // longest label
	leading string // characters a label may not start with
}

var (
	rfc1123 = labelRule{max: 63, leading: "-"}
	rfc952  = labelRule{max: 24, leading: "-0123456789"}
)

func ruleFor(enforceRFC952 bool) labelRule {
	if enforceRFC952 {
		return rfc952
	}
	return rfc1123
}

// Label sanitises a name into one DNS label by RFC 1123, as Mesos-DNS
// does by default: ASCII letters are lowercased, '.' and '_' become '-',
// every other character outside [a-z0-9-] is dropped, leading and
// trailing hyphens go, and a name longer than 63 bytes is cut there.
func Label(s string) string { return rfc1123.label(s) }

// label applies r to s. A cut that leaves hyphens at the end of the label
// drops them and fills the room from what follows the cut (hyphens at its
// start skipped), as Mesos-DNS does, so that "hello-...-f" keeps its f.
func (r labelRule) label(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z':
			b = append(b, c+'a'-'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b = append(b, c)
		case c == '-', c == '.', c == '_':
			b = append(b, '-')
		}
	}
	b = bytes.TrimLeft(b, r.leading)
	if len(b) <= r.max {
		return string(bytes.TrimRight(b, "-"))
	}
	head := bytes.TrimRight(b[:r.max], "-")
	tail := bytes.TrimLeft(b[r.max:], "-")
	room := min(r.max-len(head), len(tail))
	out := append(head[:len(head):len(head)], tail[:room]...)
	// Unlike Mesos-DNS, never end on a hyphen: that is not a valid label.
	return string(bytes.TrimRight(out, "-"))
}

// domainFrag sanitises a dotted name, such as a framework's
// ("marathon-0.6.0-dev"), label by label, dropping labels that come out
// empty: Mesos-DNS keeps a framework name's dots as label separators.
func (r labelRule) domainFrag(s string) string {
	var out []string
	for part := range strings.SplitSeq(s, ".") {
		if l := r.label(part); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, ".")
}
