package configs

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sections are the top-level keys of a config file that are not flags:
// each is a section read by the component it names ("routes": the
// gateway's static routes, see proxy.ParseStaticRoutes). Apply skips them.
var Sections = map[string]bool{"routes": true}

// Apply reads the YAML file at path and sets every flag of fs it names
// that was not set on the command line. Call it after fs.Parse.
func Apply(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("configs: %w", err)
	}
	return ApplyBytes(fs, path, data)
}

// ApplyBytes is Apply on the file's content; name is used in errors.
func ApplyBytes(fs *flag.FlagSet, name string, data []byte) error {
	var values map[string]yaml.Node
	if err := yaml.Unmarshal(data, &values); err != nil {
		return fmt.Errorf("configs: %s: %w", name, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		node := values[key]
		if Sections[key] && fs.Lookup(key) == nil {
			continue
		}
		f := fs.Lookup(key)
		if f == nil {
			errs = append(errs, fmt.Errorf("configs: %s: unknown key %q", name, key))
			continue
		}
		if set[key] || key == "config" {
			continue
		}
		val, err := scalar(&node)
		if err != nil {
			errs = append(errs, fmt.Errorf("configs: %s: key %q: %w", name, key, err))
			continue
		}
		if err := fs.Set(key, val); err != nil {
			errs = append(errs, fmt.Errorf("configs: %s: key %q: %w", name, key, err))
		}
	}
	return errors.Join(errs...)
}

// scalar renders a YAML value as flag text: scalars as they are, a list
// of scalars joined by commas.
func scalar(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("list items must be plain values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("value must be a plain value or a list of them")
}
