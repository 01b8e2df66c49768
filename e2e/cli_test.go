package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrors checks that bad input exits non-zero with one readable
// line naming what is wrong.
func TestCLIErrors(t *testing.T) {
	bin := keel(t)
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("prot: 5050\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"master", "--bogus"}, "flag provided but not defined: -bogus"},
		{"bad weights", []string{"master", "--weights", "prod=-1", "--work_dir", t.TempDir()}, "want role=positive number"},
		{"bad duration", []string{"master", "--allocation_interval", "soon"}, "allocation_interval"},
		{"agent without master", []string{"agent", "--work_dir", t.TempDir()}, "--master is required"},
		{"bad resources", []string{"agent", "--master", "127.0.0.1:1", "--resources", "cpus:lots"}, "bad scalar"},
		{"config typo", []string{"master", "--config", badConfig}, `unknown key "prot"`},
		{"bad log level", []string{"gateway", "--master", "127.0.0.1:1", "--log_level", "loud"}, "log_level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := exec.Command(bin, c.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want failure; output %q", out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output %q does not contain %q", out, c.want)
			}
		})
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "keel ") {
		t.Fatalf("version: %v %q", err, out)
	}
}
