package marathon

import (
	"encoding/json"
	"testing"
)

func TestUnreachableStrategyJSON(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		err     bool
	}{
		{in: `"disabled"`, out: `"disabled"`},
		{in: `{"inactiveAfterSeconds":0,"expungeAfterSeconds":0}`, out: `{"inactiveAfterSeconds":0,"expungeAfterSeconds":0}`},
		{in: `{"inactiveAfterSeconds":300}`, out: `{"inactiveAfterSeconds":300}`},
		{in: ` {} `, out: `{}`},
		{in: `"later"`, out: `"later"`}, // kept for validation to reject
		{in: `7`, err: true},
		{in: `[1]`, err: true},
		{in: `{"inactiveAfterSeconds":"soon"}`, err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var u UnreachableStrategy
			err := json.Unmarshal([]byte(tc.in), &u)
			if tc.err {
				if err == nil {
					t.Fatalf("no error, got %+v", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(u)
			if err != nil || string(b) != tc.out {
				t.Fatalf("round trip %s -> %s (%v), want %s", tc.in, b, err, tc.out)
			}
		})
	}
	// Inside an app, absent stays absent.
	b, _ := json.Marshal(App{ID: "/a"})
	var m map[string]any
	json.Unmarshal(b, &m)
	if _, ok := m["unreachableStrategy"]; ok {
		t.Fatalf("absent strategy marshalled: %s", b)
	}
}

// FuzzUnreachableStrategy: whatever decodes re-encodes to something that
// decodes to the same strategy.
func FuzzUnreachableStrategy(f *testing.F) {
	for _, seed := range []string{`"disabled"`, `{"inactiveAfterSeconds":1,"expungeAfterSeconds":2}`, `{}`, `"x"`, `""`, `null`, `1`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var u UnreachableStrategy
		if json.Unmarshal([]byte(s), &u) != nil {
			return
		}
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatalf("%q: marshal: %v", s, err)
		}
		var back UnreachableStrategy
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		b2, _ := json.Marshal(back)
		if string(b) != string(b2) {
			t.Fatalf("%q: %s then %s", s, b, b2)
		}
	})
}
