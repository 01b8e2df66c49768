package configs

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestExamplesParse checks every example file is YAML of plain values.
// (That every key is a real flag is checked against the binary by the
// e2e tests' CLI run.)
func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]yaml.Node
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		for k := range m {
			if !Sections[k] { // read by their components, not flags
				fs.String(k, "", "")
			}
		}
		if err := ApplyBytes(fs, f, b); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}
