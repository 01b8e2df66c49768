// Package leakcheck fails a test that leaves goroutines of Keel's own code
// running after it has stopped everything it started.
//
// Call Check(t) first in a test: its cleanup runs last (after the cleanups
// that stop servers), then waits up to five seconds for every goroutine
// whose stack runs code of this module to end, and fails with their stacks
// if any remain. Goroutines of the standard library or dependencies alone
// (idle HTTP client connections, for instance) are not counted; a leak of
// ours always has a frame of ours on its stack.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

const module = "github.com/keelhq/keel/"

// Check registers the leak check on t.
func Check(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := ours()
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: %d goroutine(s) still running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// ours returns the stacks of goroutines running this module's code, other
// than the calling goroutine and test harness frames.
func ours() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the calling goroutine
			continue
		}
		if !strings.Contains(g, module) {
			continue
		}
		// Test functions themselves (parallel siblings), and the main
		// goroutine running a package's TestMain (it runs benchmarks
		// without a tRunner), are not leaks.
		if (strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*M).Run")) && !strings.Contains(g, "created by "+module) {
			continue
		}
		out = append(out, g)
	}
	return out
}
