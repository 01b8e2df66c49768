package coord_test

import (
	"context"
	"log/slog"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/coord"
)

// A master of the HA trio: campaign, and while a term lasts, recover from
// and write to the fenced store; everything it does as leader runs under
// the term's context, so it stops the moment leadership ends.
func ExampleCampaign() {
	ctx := context.Background() // in keel master: signal.NotifyContext
	e, err := coord.Campaign(ctx, coord.ElectionConfig{
		ZK:     "zk://n1:2181,n2:2181,n3:2181/keel",
		Info:   mesos.MasterInfo{ID: "m1", Hostname: "n1", Port: 5050},
		Quorum: 2,
		Log:    slog.Default(),
	})
	if err != nil {
		return
	}
	for ev := range e.Events() {
		if !ev.Leader {
			continue // standby: redirect clients to the detector's leader
		}
		term := ev.Term
		store, err := coord.NewZKStore(term.Context(), term)
		if err != nil {
			continue // the term ended already, or ZooKeeper failed: wait for the next
		}
		lead(term.Context(), store) // returns when term.Context() ends
		store.Close()
	}
}

func lead(ctx context.Context, s *coord.ZKStore) {
	s.Put(ctx, "master/leader-since", []byte("now"))
	<-ctx.Done()
}

// A gateway or framework finding the leader from ZooKeeper or from a list of
// masters.
func ExampleDetector() {
	ctx := context.Background()
	d, err := coord.NewDetector("zk://n1:2181,n2:2181,n3:2181/keel", nil)
	if err != nil {
		return
	}
	go d.Run(ctx)
	url, err := d.LeaderURL(ctx) // "http://10.0.0.1:5050"
	_, _ = url, err
}
