package main

import (
	"testing"

	"github.com/keelhq/keel/configs"
)

// TestExampleConfigs applies every example config to the flags of its
// command: a key that is not a flag, or a value its flag rejects, fails.
func TestExampleConfigs(t *testing.T) {
	var c common
	var mf masterFlags
	var af agentFlags
	var gf gatewayFlags
	if err := configs.Apply(masterFlagSet(&c, &mf), "../../configs/examples/master.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := configs.Apply(agentFlagSet(&c, &af), "../../configs/examples/agent.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := configs.Apply(gatewayFlagSet(&c, &gf), "../../configs/examples/gateway.yaml"); err != nil {
		t.Fatal(err)
	}
	if mf.port != 5050 || mf.weights != "prod=3,dev=1" || af.attributes != "rack:r1;zone:a" || gf.resolvers != "1.1.1.1:53,9.9.9.9:53" {
		t.Fatalf("values not applied: %+v %+v %+v", mf, af, gf)
	}
}
