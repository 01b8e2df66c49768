// Package recordio implements the RecordIO framing that Mesos uses on its
// streaming HTTP responses: every record is its length in bytes as decimal
// ASCII, a newline, then exactly that many bytes.
package recordio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrTooLarge is returned by Reader.Next for a record above the reader's limit.
var ErrTooLarge = errors.New("recordio: record exceeds size limit")

// Reader reads records from a stream.
type Reader struct {
	br  *bufio.Reader
	max int
	buf []byte
}

// NewReader returns a Reader on r that refuses records larger than max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next record. The returned slice is valid until the next
// call. It returns io.EOF at a clean end of stream.
func (r *Reader) Next() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF && len(line) == 0 {
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("recordio: read length: %w", err)
	}
	n, err := strconv.Atoi(string(line[:len(line)-1]))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("recordio: bad record length %q", line[:len(line)-1])
	}
	if n > r.max {
		return nil, fmt.Errorf("%w: %d > %d", ErrTooLarge, n, r.max)
	}
	buf := r.buf
	switch {
	case n > keepLimit:
		// A one-off, such as a stream's first snapshot of the whole
		// cluster: not kept for the life of the stream.
		buf = make([]byte, n)
	case cap(buf) < n:
		buf = make([]byte, n)
		r.buf = buf
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, fmt.Errorf("recordio: read record: %w", err)
	}
	return buf, nil
}

// keepLimit is the largest record buffer a Reader keeps for the next.
const keepLimit = 1 << 20

// Frame returns data framed as one RecordIO record.
func Frame(data []byte) []byte {
	out := make([]byte, 0, len(data)+12)
	out = strconv.AppendInt(out, int64(len(data)), 10)
	out = append(out, '\n')
	return append(out, data...)
}
