package snapshot

import (
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

func TestRoutable(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name        string
		task        Task
		healthyOnly bool
		want        bool
	}{
		{"running no check", Task{State: mesos.TaskRunning}, true, true},
		{"staging", Task{State: mesos.TaskStaging}, true, false},
		{"killing", Task{State: mesos.TaskKilling}, false, false},
		{"check pending", Task{State: mesos.TaskRunning, HasHealthCheck: true}, true, false},
		{"check pending, not health-aware", Task{State: mesos.TaskRunning, HasHealthCheck: true}, false, true},
		{"healthy", Task{State: mesos.TaskRunning, HasHealthCheck: true, Healthy: &yes}, true, true},
		{"unhealthy", Task{State: mesos.TaskRunning, HasHealthCheck: true, Healthy: &no}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.task.Routable(c.healthyOnly); got != c.want {
				t.Fatalf("got %v want %v", got, c.want)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	if g := (&Task{AppID: "/prod/web", FrameworkID: "f", Name: "web.prod"}).Group(); g != "/prod/web" {
		t.Fatal(g)
	}
	if g := (&Task{FrameworkID: "f", Name: "x"}).Group(); g != "f/x" {
		t.Fatal(g)
	}
}
