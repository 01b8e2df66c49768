package mesosclient

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keelhq/keel/api/recordio"
)

type slowBody struct {
	io.Reader
	closed chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	if err == io.EOF {
		<-b.closed // a silent, open stream
		return 0, io.ErrClosedPipe
	}
	return n, err
}

func (b *slowBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func TestStreamEndsPromptly(t *testing.T) {
	// A stream the master closes returns at once, not after the idle time.
	body := io.NopCloser(strings.NewReader(string(recordio.Frame([]byte(`{"type":"HEARTBEAT"}`)))))
	start := time.Now()
	var n int
	err := Stream(context.Background(), body, time.Minute, func(ev struct{ Type string }) { n++ })
	if err == nil || n != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("err=%v events=%d after %s", err, n, time.Since(start))
	}
	// A silent stream is cut after the idle time.
	start = time.Now()
	err = Stream(context.Background(), &slowBody{Reader: strings.NewReader(""), closed: make(chan struct{})}, 200*time.Millisecond, func(struct{}) {})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("idle stream: err=%v after %s", err, time.Since(start))
	}
	// Cancelling ctx ends it with nil.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if err := Stream(ctx, &slowBody{Reader: strings.NewReader(""), closed: make(chan struct{})}, time.Minute, func(struct{}) {}); err != nil {
		t.Fatalf("cancelled stream: %v", err)
	}
}
