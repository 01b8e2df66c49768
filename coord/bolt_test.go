package coord

import (
	"context"
	"testing"
)

func TestBoltPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"apps//a": "1", "apps//b": "2", "framework/id": "f"} {
		if err := s.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "apps//b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "missing"); err != nil {
		t.Fatal(err)
	}
	// A second opener fails fast while the first holds the file.
	if _, err := OpenBolt(dir); err == nil {
		t.Fatal("second open of a held store succeeded")
	}
	s.Close()

	s, err = OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.List(ctx, "apps/")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got["apps//a"]) != "1" {
		t.Fatalf("list after reopen: %v", got)
	}
	v, ok, err := s.Get(ctx, "framework/id")
	if err != nil || !ok || string(v) != "f" {
		t.Fatalf("get: %q %v %v", v, ok, err)
	}
	if _, ok, _ := s.Get(ctx, "nope"); ok {
		t.Fatal("missing key found")
	}
}
