package master

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/keelhq/keel/api/recordio"
)

// TestConnQueue: a stream's queue holds nothing while idle, keeps order,
// is written whole after a close, and cuts the stream off past queueLen.
func TestConnQueue(t *testing.T) {
	c := newConn("idle")
	if cap(c.queue) != 0 {
		t.Fatalf("an idle stream holds a queue of %d", cap(c.queue))
	}
	for i := 0; i < queueLen; i++ {
		if !c.sendRaw([]byte(strconv.Itoa(i))) {
			t.Fatalf("record %d refused", i)
		}
	}
	if c.sendRaw([]byte("over")) || !c.closed() {
		t.Fatal("a stream past queueLen records was not cut off")
	}

	// Served: records arrive in order, the ones queued before a close too.
	c = newConn("served")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.serve(r.Context(), w, nil, 0)
	}))
	defer srv.Close()
	for i := 0; i < 100; i++ {
		c.send(i)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for i := 100; i < 200; i++ {
		c.send(i)
	}
	c.close()
	r := recordio.NewReader(bufio.NewReader(resp.Body), 1<<20)
	for i := 0; i < 200; i++ {
		rec, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if string(rec) != strconv.Itoa(i) {
			t.Fatalf("record %d is %q", i, rec)
		}
	}
}
