package master

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// newUUID returns a random RFC 4122 version 4 UUID as text.
func newUUID() string {
	b := newUUIDBytes()
	return fmt.Sprintf("%s-%s-%s-%s-%s", hex.EncodeToString(b[0:4]), hex.EncodeToString(b[4:6]),
		hex.EncodeToString(b[6:8]), hex.EncodeToString(b[8:10]), hex.EncodeToString(b[10:16]))
}

// newUUIDBytes returns 16 random bytes shaped as a version 4 UUID.
func newUUIDBytes() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return b
}
