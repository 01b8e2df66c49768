package mesosclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Operator is a client of the v1 operator API of one master.
type Operator struct {
	leader Resolver
	hc     *http.Client
}

// NewOperator returns a client of the master at base ("http://host:5050").
func NewOperator(base string) *Operator { return NewOperatorFor(Static(base)) }

// NewOperatorFor returns a client of whichever master leader names at
// each call or subscription.
func NewOperatorFor(leader Resolver) *Operator {
	return &Operator{leader: leader, hc: newHTTPClient()}
}

func (o *Operator) url(ctx context.Context) (string, error) {
	base, err := o.leader(ctx)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + "/api/v1", nil
}

// Call sends a non-streaming call (GET_STATE, GET_VERSION, ...).
func (o *Operator) Call(ctx context.Context, typ string) (*mesos.OperatorResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	url, err := o.url(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := post(ctx, o.hc, url, mesos.OperatorCall{Type: typ}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out mesos.OperatorResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRecord)).Decode(&out); err != nil {
		return nil, fmt.Errorf("mesosclient: decode %s: %w", typ, err)
	}
	return &out, nil
}

// Subscribe opens the operator SUBSCRIBE stream and hands every event to
// handle in order (the first is SUBSCRIBED with the full state) until ctx
// is done (returns nil) or the stream breaks or goes silent for idle
// (returns an error).
func (o *Operator) Subscribe(ctx context.Context, idle time.Duration, handle func(mesos.OperatorEvent)) error {
	url, err := o.url(ctx)
	if err != nil {
		return err
	}
	resp, err := post(ctx, o.hc, url, mesos.OperatorCall{Type: mesos.OpSubscribe}, nil)
	if err != nil {
		return err
	}
	return Stream(ctx, resp.Body, idle, handle)
}
