package zktest

import (
	"strings"
	"testing"

	"github.com/keelhq/keel/internal/leakcheck"
)

func TestMissingJarsSayHowToInstall(t *testing.T) {
	_, err := installed(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "run make test-deps / scripts/test-deps.sh") {
		t.Fatalf("installed(empty dir) = %v, want the install hint", err)
	}
}

func TestStandalone(t *testing.T) {
	leakcheck.Check(t)
	c := Start(t)
	if c.Len() != 1 || !strings.HasPrefix(c.ConnectString(), "127.0.0.1:") {
		t.Fatalf("connect string %q", c.ConnectString())
	}
	if m, err := c.Mode(0); err != nil || m != "standalone" {
		t.Fatalf("mode %q %v", m, err)
	}
	c.Kill(0)
	if _, err := c.Command(0, "ruok"); err == nil {
		t.Fatal("killed server still answers")
	}
	c.StartServer(0)
	if out, err := c.Command(0, "ruok"); err != nil || out != "imok" {
		t.Fatalf("ruok after restart: %q %v", out, err)
	}
}

func TestEnsemble(t *testing.T) {
	leakcheck.Check(t)
	c := StartEnsemble(t, 3)
	if got := len(strings.Split(c.ConnectString(), ",")); got != 3 {
		t.Fatalf("connect string %q", c.ConnectString())
	}
	leaders := 0
	for i := range c.Len() {
		m, err := c.Mode(i)
		if err != nil {
			t.Fatal(err)
		}
		if m == "leader" {
			leaders++
		} else if m != "follower" {
			t.Fatalf("server %d mode %q", i, m)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	c.Stop(1)
	if _, err := c.Command(1, "ruok"); err == nil {
		t.Fatal("stopped server still answers")
	}
	c.StartServer(1)
	if c.Index(c.Addr(2)) != 2 || c.Index("nope") != -1 {
		t.Fatal("Index")
	}
}
