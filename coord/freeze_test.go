package coord

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/internal/zktest"
)

const helperEnv = "KEEL_COORD_FROZEN_HELPER_ZK"

// TestFrozenHelper is the child process of TestSIGSTOPLeader; run alone
// it does nothing.
func TestFrozenHelper(t *testing.T) {
	url := os.Getenv(helperEnv)
	if url == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := Campaign(ctx, ElectionConfig{ZK: url, Info: info("frozen", 1), SessionTimeout: 2 * time.Second})
	if err != nil {
		fmt.Println("ERROR", err)
		return
	}
	var term Term
	for ev := range e.Events() {
		if ev.Leader {
			term = ev.Term
			break
		}
	}
	fmt.Println("LEADING")
	// Report, as fast as possible, every moment this process believes it
	// leads; the parent checks that none comes after it resumed.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for term.Leading() {
		fmt.Println("L", time.Now().UnixNano())
		<-tick.C
	}
	<-term.Context().Done()
	fmt.Println("ENDED", context.Cause(term.Context()))
	cancel()
	<-e.Done()
}

// TestSIGSTOPLeader freezes a leader process with SIGSTOP for longer than
// its session timeout, lets another master take over, then resumes it: the
// resumed process must not believe it leads for even a moment.
func TestSIGSTOPLeader(t *testing.T) {
	leakcheck.Check(t)
	zks := zktest.Start(t)
	url := "zk://" + zks.ConnectString() + "/keel"
	child := exec.Command(os.Args[0], "-test.run=^TestFrozenHelper$", "-test.count=1")
	child.Env = append(os.Environ(), helperEnv+"="+url)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1<<16)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		child.Process.Kill()
		<-scanned
		child.Wait()
	})
	waitLine := func(prefix string) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("helper exited before %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q from the helper within %s", prefix, within)
			}
		}
	}
	waitLine("LEADING")
	other, _ := candidate(t, ElectionConfig{ZK: url, Info: info("other", 2), SessionTimeout: 2 * time.Second})
	if ev := next(t, other); ev.Leader {
		t.Fatal("other leads while the helper does")
	}
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	leads(t, other) // ZooKeeper expired the frozen leader's session
	resumed := time.Now()
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Every "L" line stamped after the resume is a moment of two leaders.
	var ended string
	deadline := time.After(within)
	for ended == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("helper exited before its term ended")
			}
			if ts, ok := strings.CutPrefix(l, "L "); ok {
				if n, _ := strconv.ParseInt(ts, 10, 64); time.Unix(0, n).After(resumed) {
					t.Fatalf("resumed helper believed it led %s after the resume", time.Unix(0, n).Sub(resumed))
				}
			}
			if strings.HasPrefix(l, "ENDED") {
				ended = l
			}
		case <-deadline:
			t.Fatal("helper's term did not end after the resume")
		}
	}
	t.Log(ended)
}
