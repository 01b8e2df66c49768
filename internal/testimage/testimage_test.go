package testimage

import (
	"testing"

	"github.com/docker/docker/client"
)

func TestBuildIsIdempotent(t *testing.T) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer cli.Close()
	first := Build(t, cli)
	if first != Tag() {
		t.Fatalf("built %s, want %s", first, Tag())
	}
	if again := Build(t, cli); again != first {
		t.Fatalf("second build gave %s, want %s", again, first)
	}
}
