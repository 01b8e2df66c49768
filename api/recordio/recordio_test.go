package recordio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	recs := []string{`{"type":"HEARTBEAT"}`, "", strings.Repeat("x", 100000)}
	for _, r := range recs {
		b.Write(Frame([]byte(r)))
	}
	rd := NewReader(&b, 1<<20)
	for i, want := range recs {
		got, err := rd.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if string(got) != want {
			t.Fatalf("record %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := rd.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"not a number": "abc\n{}",
		"negative":     "-1\n",
		"short":        "10\n{}",
		"no newline":   "12",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewReader(strings.NewReader(in), 100).Next(); err == nil || err == io.EOF {
				t.Fatalf("want error, got %v", err)
			}
		})
	}
	if _, err := NewReader(strings.NewReader("1000\n"), 100).Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("2\n{}3\nabc"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := NewReader(bytes.NewReader(in), 1<<16)
		for i := 0; i < 100; i++ {
			if _, err := rd.Next(); err != nil {
				return
			}
		}
	})
}

// TestLargeRecordNotKept: a record above keepLimit is read whole but its
// buffer is not held for the records after it.
func TestLargeRecordNotKept(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 3*keepLimit)
	var in bytes.Buffer
	in.Write(Frame(big))
	in.Write(Frame([]byte("small")))
	r := NewReader(&in, 4*keepLimit)
	rec, err := r.Next()
	if err != nil || !bytes.Equal(rec, big) {
		t.Fatalf("big record: %d bytes, %v", len(rec), err)
	}
	if cap(r.buf) > keepLimit {
		t.Fatalf("reader keeps a %d-byte buffer after a large record", cap(r.buf))
	}
	if rec, err := r.Next(); err != nil || string(rec) != "small" {
		t.Fatalf("next record %q, %v", rec, err)
	}
}
