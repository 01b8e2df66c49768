package leakcheck

import (
	"testing"
	"time"
)

func spin(stop chan struct{}) { <-stop }

func TestFindsOurGoroutines(t *testing.T) {
	stop := make(chan struct{})
	go spin(stop)
	time.Sleep(10 * time.Millisecond)
	if n := len(ours()); n != 1 {
		t.Fatalf("found %d goroutines of ours, want 1", n)
	}
	close(stop)
	deadline := time.Now().Add(time.Second)
	for len(ours()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("goroutine not gone")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
