package mesosclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keelhq/keel/api/recordio"
)

// maxRecord bounds one record of a stream (a SUBSCRIBED state of a large
// cluster is the biggest).
const maxRecord = 256 << 20

// callTimeout bounds every non-streaming call.
const callTimeout = 10 * time.Second

// newHTTPClient returns a client whose dials and response headers time
// out; stream bodies are bounded by their context and by heartbeats.
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}}
}

// Resolver returns the base URL ("http://host:5050") of the master to
// talk to now: the leader, as a detector (coord.Detector) knows it.
type Resolver func(ctx context.Context) (string, error)

// Static is the Resolver of one fixed master: a standalone one, or any
// master of an HA set (standbys redirect to the leader).
func Static(base string) Resolver {
	return func(context.Context) (string, error) { return base, nil }
}

// StatusError is a non-2xx answer from the master.
type StatusError struct {
	Code int
	Body string
}

// Error says what the master answered.
func (e *StatusError) Error() string {
	return fmt.Sprintf("mesosclient: master answered %d: %s", e.Code, strings.TrimSpace(e.Body))
}

func post(ctx context.Context, hc *http.Client, url string, body any, hdr http.Header) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("mesosclient: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("mesosclient: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mesosclient: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &StatusError{Code: resp.StatusCode, Body: string(msg)}
	}
	return resp, nil
}

// Stream reads RecordIO records of JSON from body into fn until the body
// ends, ctx is done, or no record (heartbeats included) arrives within
// idle. It returns nil only when ctx is done. It closes body. Other
// RecordIO streams of JSON (Keel's agent protocol) use it too.
func Stream[T any](ctx context.Context, body io.ReadCloser, idle time.Duration, fn func(T)) error {
	defer body.Close()
	var (
		mu       sync.Mutex
		deadline = time.Now().Add(idle)
	)
	stop := make(chan struct{})
	watchdog := make(chan struct{})
	// Stop the watchdog, then wait for it (in that order).
	defer func() {
		close(stop)
		<-watchdog
	}()
	go func() {
		defer close(watchdog)
		t := time.NewTicker(idle / 4)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				body.Close()
				return
			case <-t.C:
				mu.Lock()
				late := time.Now().After(deadline)
				mu.Unlock()
				if late {
					body.Close()
					return
				}
			}
		}
	}()
	rd := recordio.NewReader(body, maxRecord)
	for {
		rec, err := rd.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if err == io.EOF {
				return fmt.Errorf("mesosclient: stream closed by master")
			}
			return fmt.Errorf("mesosclient: stream: %w", err)
		}
		mu.Lock()
		deadline = time.Now().Add(idle)
		mu.Unlock()
		var v T
		if err := json.Unmarshal(rec, &v); err != nil {
			return fmt.Errorf("mesosclient: decode event: %w", err)
		}
		fn(v)
	}
}
