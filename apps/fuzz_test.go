package apps

import (
	"encoding/json"
	"testing"

	"github.com/keelhq/keel/api/marathon"
)

// FuzzConstraint feeds constraints from outside to validation and, when
// valid, to placement checks: neither may panic.
func FuzzConstraint(f *testing.F) {
	for _, seed := range []string{`["hostname","UNIQUE"]`, `["rack","GROUP_BY","3"]`, `["zone","LIKE","a|b"]`,
		`["rack","MAX_PER","2"]`, `["hostname","CLUSTER","n1"]`, `["zone","IS","a"]`, `["x","UNLIKE","(("]`, `[]`} {
		f.Add(seed)
	}
	placed := []agentPlace{{Host: "n1", Attrs: map[string]string{"rack": "r1", "zone": "a"}}, {Host: "n2"}}
	f.Fuzz(func(t *testing.T, s string) {
		var c []string
		if json.Unmarshal([]byte(s), &c) != nil {
			return
		}
		pc, err := parseConstraint(c)
		if err != nil {
			return
		}
		for _, p := range append(placed, agentPlace{Host: "n3", Attrs: map[string]string{"rack": "r2"}}) {
			meets(pc, p, placed)
		}
	})
}

// FuzzGroup feeds group bodies to decoding and validation: no panics, and
// a valid group's apps all lie under it.
func FuzzGroup(f *testing.F) {
	f.Add(`{"id":"/prod","apps":[{"id":"web","cmd":"x","dependencies":["../db"]}],"groups":[{"id":"db","apps":[{"id":"pg","cmd":"x"}]}]}`)
	f.Add(`{"id":"a/../b","groups":[{"id":"/x"}]}`)
	f.Add(`{"apps":[{"id":"","cmd":"x"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var g marathon.Group
		if decodeGroup([]byte(body), &g) != nil {
			return
		}
		flat, err := flatten(g, "/")
		if err != nil {
			return
		}
		root := flat.Groups[0].ID
		for _, a := range flat.Apps {
			if !under(a.ID, root) || a.ID == root {
				t.Fatalf("app %s outside group %s", a.ID, root)
			}
		}
	})
}
