package coord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"
)

const (
	// chunkSize is the largest value stored in one znode; bigger values
	// are split. ZooKeeper refuses requests over jute.maxbuffer (1 MiB by
	// default), so each chunk goes in its own request.
	chunkSize = 512 << 10
	// buckets keeps each directory's child list short: a key lives in
	// bucket fnv32a(key) % buckets.
	buckets = 32
	// conflictRetries bounds the re-reads when another writer (the same
	// leader, concurrently) changed a key between our read and our write.
	conflictRetries = 5
)

// Head node formats: the first byte of a key's node.
const (
	headInline  = 'v' // the rest is the value
	headChunked = 'c' // the rest is a chunkRef in JSON
)

// chunkRef is the head of a chunked value: chunk i is the node
// state/chunks/bNN/<key>~<Gen>~<i>.
type chunkRef struct {
	Gen  string `json:"gen"`
	N    int    `json:"n"`
	Size int    `json:"size"`
}

// ZKStore is the durable key/value store of a leader in ZooKeeper, with the
// methods of Bolt. Keys are any strings; each is escaped into one znode name
// under path/state/keys/bNN. Values over 512 KiB are split across nodes
// under path/state/chunks/bNN and reassembled on read.
//
// Every write is a ZooKeeper multi-op that also checks that the leader's
// election node exists, so once a leader has been deposed (its session
// expired, its node deleted) none of its writes can land: they fail with
// ErrNotLeader. A store is bound to one term and fails with ErrNotLeader
// once the term is over; make a new one for the next term.
//
// A value's chunks are written (fenced) before its head node points at
// them, so a reader never sees half a value; a Put that fails part way may
// leave unreferenced chunks behind.
type ZKStore struct {
	term   Term
	keys   string
	chunks string
	closed atomic.Bool
}

// NewZKStore opens the store of term's leader: it creates the directories
// it needs and syncs with the ZooKeeper leader, so reads then see every
// write acknowledged before the term began.
func NewZKStore(ctx context.Context, term Term) (*ZKStore, error) {
	if !term.Leading() {
		return nil, ErrNotLeader
	}
	s := &ZKStore{term: term, keys: term.base + "/state/keys", chunks: term.base + "/state/chunks"}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	for _, dir := range []string{s.keys, s.chunks} {
		have, err := call(ctx, func() ([]string, error) {
			c, _, err := term.conn.Children(dir)
			return c, err
		})
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return nil, s.fail("open", dir, err)
		}
		if len(have) >= buckets {
			continue
		}
		if err := ensurePath(ctx, term.conn, dir); err != nil {
			return nil, s.fail("open", dir, err)
		}
		for b := range buckets {
			p := fmt.Sprintf("%s/b%02d", dir, b)
			_, err := call(ctx, func() (string, error) { return term.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)) })
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return nil, s.fail("open", p, err)
			}
		}
	}
	if _, err := call(ctx, func() (string, error) { return term.conn.Sync(term.base) }); err != nil {
		return nil, s.fail("open", term.base, err)
	}
	return s, nil
}

// bind returns ctx, also cancelled (with ErrNotLeader) when the term ends.
func (s *ZKStore) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.term.Context(), func() { cancel(ErrNotLeader) })
	return ctx, func() { stop(); cancel(nil) }
}

// fail wraps err of op on key, as ErrNotLeader when the term is over or
// ZooKeeper refused the fence.
func (s *ZKStore) fail(op, key string, err error) error {
	if errors.Is(err, ErrNotLeader) || !s.term.Leading() {
		return fmt.Errorf("coord: %s %s: %w", op, key, ErrNotLeader)
	}
	return fmt.Errorf("coord: %s %s: %w", op, key, err)
}

func (s *ZKStore) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.term.Leading() {
		return ErrNotLeader
	}
	return nil
}

// headPath is the node of key.
func (s *ZKStore) headPath(key string) string {
	return fmt.Sprintf("%s/b%02d/%s", s.keys, bucketOf(key), escapeKey(key))
}

func (s *ZKStore) chunkPath(key, gen string, i int) string {
	return fmt.Sprintf("%s/b%02d/%s~%s~%d", s.chunks, bucketOf(key), escapeKey(key), gen, i)
}

// Get returns the value of key and whether it exists.
func (s *ZKStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := s.check(); err != nil {
		return nil, false, fmt.Errorf("coord: get %s: %w", key, err)
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	v, ok, err := s.get(ctx, key)
	if err != nil {
		return nil, false, s.fail("get", key, err)
	}
	return v, ok, nil
}

func (s *ZKStore) get(ctx context.Context, key string) ([]byte, bool, error) {
	for range conflictRetries {
		head, _, err := s.readHead(ctx, key)
		if errors.Is(err, zk.ErrNoNode) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if head[0] == headInline {
			return head[1:], true, nil
		}
		ref, err := parseRef(head)
		if err != nil {
			return nil, false, err
		}
		v, err := s.readChunks(ctx, key, ref)
		if errors.Is(err, zk.ErrNoNode) {
			continue // replaced while we read it
		}
		return v, err == nil, err
	}
	return nil, false, fmt.Errorf("coord: value kept changing while read")
}

// readHead reads key's head node and its version.
func (s *ZKStore) readHead(ctx context.Context, key string) ([]byte, int32, error) {
	type res struct {
		data []byte
		ver  int32
	}
	r, err := call(ctx, func() (res, error) {
		d, st, err := s.term.conn.Get(s.headPath(key))
		if err != nil {
			return res{}, err
		}
		return res{d, st.Version}, nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(r.data) == 0 || (r.data[0] != headInline && r.data[0] != headChunked) {
		return nil, 0, fmt.Errorf("coord: node %s is not a coord value", s.headPath(key))
	}
	return r.data, r.ver, nil
}

func parseRef(head []byte) (chunkRef, error) {
	var ref chunkRef
	if err := json.Unmarshal(head[1:], &ref); err != nil || ref.N < 1 || ref.Gen == "" {
		return chunkRef{}, fmt.Errorf("coord: bad chunk reference %q", head[1:])
	}
	return ref, nil
}

func (s *ZKStore) readChunks(ctx context.Context, key string, ref chunkRef) ([]byte, error) {
	parts := make([][]byte, ref.N)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range ref.N {
		g.Go(func() error {
			d, err := call(gctx, func() ([]byte, error) {
				d, _, err := s.term.conn.Get(s.chunkPath(key, ref.Gen, i))
				return d, err
			})
			parts[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	v := bytes.Join(parts, nil)
	if len(v) != ref.Size {
		return nil, fmt.Errorf("coord: value of %s has %d bytes, want %d", key, len(v), ref.Size)
	}
	return v, nil
}

// fence is the first op of every write: the leader's node must exist.
func (s *ZKStore) fence() any { return &zk.CheckVersionRequest{Path: s.term.Node, Version: -1} }

// multi runs ops (the fence first) and returns the index of the op that
// failed with its error, or -1 and nil.
func (s *ZKStore) multi(ctx context.Context, ops ...any) (int, error) {
	ops = append([]any{s.fence()}, ops...)
	res, err := call(ctx, func() ([]zk.MultiResponse, error) { return s.term.conn.Multi(ops...) })
	if err == nil {
		return -1, nil
	}
	for i, r := range res {
		if r.Error != nil {
			if i == 0 && errors.Is(r.Error, zk.ErrNoNode) {
				return 0, ErrNotLeader
			}
			return i, r.Error
		}
	}
	return -1, err
}

// conflict reports whether a failed write lost a race on the head node
// (op 1) and should be retried from a fresh read.
func conflict(op int, err error) bool {
	return op == 1 && (errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode))
}

// Put stores value under key.
func (s *ZKStore) Put(ctx context.Context, key string, value []byte) error {
	if err := s.check(); err != nil {
		return fmt.Errorf("coord: put %s: %w", key, err)
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	var (
		head    []byte
		written []string
	)
	if len(value) <= chunkSize {
		head = append([]byte{headInline}, value...)
	} else {
		ref := chunkRef{Gen: newGen(), Size: len(value)}
		for off := 0; off < len(value); off += chunkSize {
			p := s.chunkPath(key, ref.Gen, ref.N)
			part := value[off:min(off+chunkSize, len(value))]
			if _, err := s.multi(ctx, &zk.CreateRequest{Path: p, Data: part, Acl: zk.WorldACL(zk.PermAll)}); err != nil {
				s.discard(written)
				return s.fail("put", key, err)
			}
			written = append(written, p)
			ref.N++
		}
		j, _ := json.Marshal(ref)
		head = append([]byte{headChunked}, j...)
	}
	for range conflictRetries {
		old, ver, err := s.readHead(ctx, key)
		exists := err == nil
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			s.discard(written)
			return s.fail("put", key, err)
		}
		ops := []any{}
		if exists {
			ops = append(ops, &zk.SetDataRequest{Path: s.headPath(key), Data: head, Version: ver})
			ops = append(ops, s.chunkDeletes(key, old)...)
		} else {
			ops = append(ops, &zk.CreateRequest{Path: s.headPath(key), Data: head, Acl: zk.WorldACL(zk.PermAll)})
		}
		op, err := s.multi(ctx, ops...)
		if err == nil {
			return nil
		}
		if !conflict(op, err) {
			s.discard(written)
			return s.fail("put", key, err)
		}
	}
	s.discard(written)
	return s.fail("put", key, errors.New("too many concurrent writers"))
}

// Delete removes key; deleting a missing key is not an error.
func (s *ZKStore) Delete(ctx context.Context, key string) error {
	if err := s.check(); err != nil {
		return fmt.Errorf("coord: delete %s: %w", key, err)
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	for range conflictRetries {
		old, ver, err := s.readHead(ctx, key)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return s.fail("delete", key, err)
		}
		ops := append([]any{&zk.DeleteRequest{Path: s.headPath(key), Version: ver}}, s.chunkDeletes(key, old)...)
		op, err := s.multi(ctx, ops...)
		if err == nil {
			return nil
		}
		if !conflict(op, err) {
			return s.fail("delete", key, err)
		}
	}
	return s.fail("delete", key, errors.New("too many concurrent writers"))
}

// chunkDeletes are the ops removing the chunks an old head refers to.
func (s *ZKStore) chunkDeletes(key string, old []byte) []any {
	if old[0] != headChunked {
		return nil
	}
	ref, err := parseRef(old)
	if err != nil {
		return nil
	}
	ops := make([]any, 0, ref.N)
	for i := range ref.N {
		ops = append(ops, &zk.DeleteRequest{Path: s.chunkPath(key, ref.Gen, i), Version: -1})
	}
	return ops
}

// discard deletes chunks no head refers to (best effort, unfenced: they
// are garbage whoever leads).
func (s *ZKStore) discard(paths []string) {
	if len(paths) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.term.timeout)
	defer cancel()
	for _, p := range paths {
		call(ctx, func() (struct{}, error) { return struct{}{}, s.term.conn.Delete(p, -1) })
	}
}

// List returns every key with prefix and its value.
func (s *ZKStore) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("coord: list %s: %w", prefix, err)
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	names := make([][]string, buckets)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for b := range buckets {
		g.Go(func() error {
			c, err := call(gctx, func() ([]string, error) {
				c, _, err := s.term.conn.Children(fmt.Sprintf("%s/b%02d", s.keys, b))
				return c, err
			})
			names[b] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, s.fail("list", prefix, err)
	}
	var keys []string
	for _, bucket := range names {
		for _, n := range bucket {
			if k, ok := unescapeKey(n); ok && strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
	}
	values := make([][]byte, len(keys))
	found := make([]bool, len(keys))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, k := range keys {
		g.Go(func() (err error) {
			values[i], found[i], err = s.get(gctx, k)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, s.fail("list", prefix, err)
	}
	out := make(map[string][]byte, len(keys))
	for i, k := range keys {
		if found[i] { // deleted since it was listed otherwise
			out[k] = values[i]
		}
	}
	return out, nil
}

// Close makes every later call fail with ErrClosed. The session belongs
// to the Election and stays open.
func (s *ZKStore) Close() error {
	s.closed.Store(true)
	return nil
}

func bucketOf(key string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(key))
	return h.Sum32() % buckets
}

func newGen() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// escapeKey turns any string into one valid znode name: "k" (so the name is
// never empty, "." or "..") followed by the key with every byte outside
// [A-Za-z0-9._:-] written as %XX. '~' is escaped too, so chunk names
// (key~gen~i) never collide with another key's.
func escapeKey(key string) string {
	var b strings.Builder
	b.Grow(len(key) + 1)
	b.WriteByte('k')
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// unescapeKey inverts escapeKey; ok is false for names it did not make.
func unescapeKey(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "k")
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		if rest[i] != '%' {
			b.WriteByte(rest[i])
			continue
		}
		if i+3 > len(rest) {
			return "", false
		}
		v, err := hex.DecodeString(rest[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}
