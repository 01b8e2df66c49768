package coord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by a Bolt store after Close.
var ErrClosed = errors.New("coord: store closed")

var bucket = []byte("keel")

// Bolt is a durable key/value store in one bbolt file. It is safe for
// concurrent use; every write is committed (fsynced) before it returns.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens (creating if needed) the store file "keel.db" in dir. It
// fails fast (within a second) when another process holds the file.
func OpenBolt(dir string) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("coord: create work dir: %w", err)
	}
	path := filepath.Join(dir, "keel.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("coord: open %s: %w (is another keel using this work dir?)", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("coord: init %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Get returns the value of key and whether it exists.
func (b *Bolt) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get([]byte(key)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("coord: get %s: %w", key, err)
	}
	return out, out != nil, nil
}

// Put stores value under key.
func (b *Bolt) Put(ctx context.Context, key string, value []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("coord: put %s: %w", key, err)
	}
	return nil
}

// PutAll stores every key of kv in one fsynced transaction: all or
// nothing.
func (b *Bolt) PutAll(ctx context.Context, kv map[string][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		for k, v := range kv {
			if v == nil {
				v = []byte{}
			}
			if err := bk.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("coord: put %d keys: %w", len(kv), err)
	}
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (b *Bolt) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("coord: delete %s: %w", key, err)
	}
	return nil
}

// List returns every key with prefix and its value.
func (b *Bolt) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && strings.HasPrefix(string(k), prefix); k, v = c.Next() {
			out[string(k)] = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coord: list %s: %w", prefix, err)
	}
	return out, nil
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }
