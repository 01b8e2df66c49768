package dns

import (
	"strings"
	"testing"
	"testing/quick"

	"github.com/keelhq/keel/snapshot"
)

func TestLabelRules(t *testing.T) {
	long := "hello" + strings.Repeat("-", 60) + "f" // the cut falls among the hyphens
	for _, c := range []struct {
		rule     labelRule
		in, want string
	}{
		{rfc1123, "web.prod", "web-prod"},
		{rfc1123, "Odd_Name!!", "odd-name"},
		{rfc1123, "-x-", "x"},
		{rfc1123, strings.Repeat("a", 70), strings.Repeat("a", 63)},
		{rfc1123, "My Framework", "myframework"},
		{rfc1123, "4abc123", "4abc123"},
		{rfc1123, long, "hellof"},
		{rfc1123, "ünïcode", "ncode"},
		{rfc1123, "fd%gsf---gs7-f$gs--d7fddg123456789012345678901234567890123456789-123", "fdgsf---gs7-fgs--d7fddg1234567890123456789012345678901234567891"},
		{rfc952, "4abc123", "abc123"},
		{rfc952, "-4abc123", "abc123"},
		{rfc952, "89fdgsf---gs7-fgs--d7fddg---123", "fdgsf---gs7-fgs--d7fddg1"},
		{rfc952, "chronos with a space AND MIXED CASE-2.0.1", "chronoswithaspaceandmixe"},
		{rfc952, "123", ""},
	} {
		if got := c.rule.label(c.in); got != c.want {
			t.Errorf("label%d(%q) = %q, want %q", c.rule.max, c.in, got, c.want)
		}
	}
	if got := rfc1123.domainFrag("pod_123$abc.marathon-0.6.0-dev..x."); got != "pod-123abc.marathon-0.6.0-dev.x" {
		t.Errorf("domainFrag 1123: %q", got)
	}
	if got := rfc952.domainFrag("pod_123$abc.marathon-0.6.0-dev"); got != "pod-123abc.marathon-0.dev" {
		t.Errorf("domainFrag 952: %q", got)
	}
}

// TestLabelProperties: whatever the input, a label is a valid one.
func TestLabelProperties(t *testing.T) {
	for _, r := range []labelRule{rfc1123, rfc952} {
		valid := func(s string) bool {
			l := r.label(s)
			if len(l) > r.max || strings.HasSuffix(l, "-") || (l != "" && strings.ContainsAny(l[:1], r.leading)) {
				return false
			}
			for _, c := range l {
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
					return false
				}
			}
			return true
		}
		if err := quick.Check(valid, &quick.Config{MaxCount: 20000}); err != nil {
			t.Errorf("rule %d: %v", r.max, err)
		}
	}
}

// TestZoneRFC952 builds a zone both ways: a framework name's dots stay
// label separators, and RFC 952 mode strips leading digits and cuts at 24.
func TestZoneRFC952(t *testing.T) {
	snap := snapshot.Empty()
	snap.Tasks = []snapshot.Task{{ID: "t1", Name: "2048-game-with-a-rather-long-name", FrameworkName: "marathon-1.4.0",
		AgentID: "a-S1", AgentIP: "10.0.0.1", State: "TASK_RUNNING"}}
	for _, c := range []struct {
		enforce bool
		name    string
	}{
		{false, "2048-game-with-a-rather-long-name.marathon-1.4.0.mesos."},
		{true, "game-with-a-rather-longn.marathon-1.mesos."}, // the cut left a hyphen: refilled from "name"
	} {
		z := Build(snap, BuildOptions{Domain: "mesos", TTL: 60, EnforceRFC952: c.enforce})
		if rrs, ok := z.Lookup(c.name); !ok || len(rrs) == 0 {
			t.Errorf("EnforceRFC952=%v: no records for %s; names: %v", c.enforce, c.name, z.Names())
		}
	}
}
