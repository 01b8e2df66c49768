package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDelay merges the bursts of events one file write makes.
const reloadDelay = 100 * time.Millisecond

// certStore holds the HTTPS listener's certificates: every *.pem of the
// certificate directory and every file an app names in
// HAPROXY_{n}_SSL_CERT, each a PEM bundle of certificate chain and key (as
// marathon-lb's /etc/ssl/cert.pem). They are re-read when the files
// change; a file that no longer parses keeps serving its last good
// certificate. The handshake path loads one pointer.
type certStore struct {
	dir     string
	log     *slog.Logger
	metrics *metrics
	self    *tls.Certificate // served when nothing else is configured

	mu     sync.Mutex // guards refs, loaded; never taken by handshakes
	refs   []string   // sorted, from the current table
	loaded map[string]*tls.Certificate

	set     atomic.Pointer[certSet]
	reloads atomic.Uint64 // completed reloads, for tests and debugging
	kick    chan struct{}
}

// certSet is one immutable generation of certificates by name.
type certSet struct {
	exact map[string]*tls.Certificate // "www.example.com"
	wild  map[string]*tls.Certificate // ".example.com" for *.example.com
	def   *tls.Certificate
	count int
}

func newCertStore(dir string, log *slog.Logger, m *metrics) (*certStore, error) {
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("proxy: certificate directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("proxy: certificate directory %s: not a directory", dir)
		}
		dir = filepath.Clean(dir)
	}
	self, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("proxy: default certificate: %w", err)
	}
	s := &certStore{dir: dir, log: log, metrics: m, self: self, loaded: map[string]*tls.Certificate{}, kick: make(chan struct{}, 1)}
	s.set.Store(&certSet{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}, def: self})
	s.reload()
	return s, nil
}

// getCertificate picks the certificate for a handshake by SNI: an exact
// name, then a wildcard one level up, then the default.
func (s *certStore) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.set.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if c := set.exact[name]; c != nil {
		return c, nil
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c := set.wild[name[i:]]; c != nil {
			return c, nil
		}
	}
	return set.def, nil
}

// setRefs records the certificate files the table names and asks the
// watcher to load them if they changed.
func (s *certStore) setRefs(refs []string) {
	sort.Strings(refs)
	refs = slices.Compact(refs)
	s.mu.Lock()
	same := slices.Equal(refs, s.refs)
	s.refs = refs
	s.mu.Unlock()
	if !same {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// paths lists the files to load, in precedence order: the directory's
// default.pem, its other *.pem by name, then the apps' files.
func (s *certStore) paths() []string {
	var out []string
	if s.dir != "" {
		entries, err := os.ReadDir(s.dir)
		if err != nil {
			s.log.Error("cannot list certificate directory", "dir", s.dir, "err", err)
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".pem") && !strings.HasPrefix(e.Name(), ".") {
				out = append(out, filepath.Join(s.dir, e.Name()))
			}
		}
		sort.SliceStable(out, func(i, j int) bool {
			return filepath.Base(out[i]) == "default.pem" && filepath.Base(out[j]) != "default.pem"
		})
	}
	s.mu.Lock()
	for _, r := range s.refs {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	s.mu.Unlock()
	return out
}

// reload re-reads every file and publishes a new set.
func (s *certStore) reload() {
	paths := s.paths()
	next := map[string]*tls.Certificate{}
	set := &certSet{exact: map[string]*tls.Certificate{}, wild: map[string]*tls.Certificate{}}
	// Only the watcher reloads, so loaded may be read here and replaced at
	// the end without holding mu while files are read.
	s.mu.Lock()
	prev := s.loaded
	s.mu.Unlock()
	for _, p := range paths {
		c, err := loadCert(p)
		if errors.Is(err, fs.ErrNotExist) {
			if prev[p] != nil {
				s.log.Info("certificate file removed", "path", p)
			}
			continue
		}
		if err != nil {
			s.metrics.certErrors.Inc()
			if old := prev[p]; old != nil {
				s.log.Error("cannot load certificate, keeping the previous one", "path", p, "err", err)
				c = old
			} else {
				s.log.Error("cannot load certificate", "path", p, "err", err)
				continue
			}
		}
		next[p] = c
		set.count++
		if set.def == nil {
			set.def = c
		}
		for _, n := range certNames(c.Leaf) {
			if strings.HasPrefix(n, "*.") {
				if set.wild[n[1:]] == nil {
					set.wild[n[1:]] = c
				}
			} else if set.exact[n] == nil {
				set.exact[n] = c
			}
		}
	}
	s.mu.Lock()
	s.loaded = next
	s.mu.Unlock()
	if set.def == nil {
		set.def = s.self
	}
	s.set.Store(set)
	s.metrics.certificates.Set(float64(set.count))
	s.reloads.Add(1)
}

func loadCert(path string) (*tls.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("proxy: certificate %s: %w", path, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("proxy: certificate %s: %w", path, err)
		}
	}
	return &c, nil
}

// certNames are the lowercase names a certificate answers for: its DNS
// SANs, or its common name when it has none.
func certNames(leaf *x509.Certificate) []string {
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	return out
}

// watch re-reads the certificates when a watched file changes or the
// table names other files, until ctx is done. It watches directories, not
// files, so a file replaced by rename is seen too.
func (s *certStore) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("proxy: certificate watcher: %w", err)
	}
	defer w.Close()
	watched := map[string]bool{}
	relevant := map[string]bool{}
	resync := func() {
		want := map[string]bool{}
		if s.dir != "" {
			want[s.dir] = true
		}
		s.mu.Lock()
		clear(relevant)
		for _, r := range s.refs {
			want[filepath.Dir(r)] = true
			relevant[r] = true
		}
		s.mu.Unlock()
		for d := range watched {
			if !want[d] {
				_ = w.Remove(d)
				delete(watched, d)
			}
		}
		for d := range want {
			if watched[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				s.log.Warn("cannot watch certificate directory", "dir", d, "err", err)
				continue
			}
			watched[d] = true
		}
	}
	resync()
	s.reload()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if (s.dir != "" && filepath.Dir(ev.Name) == s.dir && strings.HasSuffix(ev.Name, ".pem")) || relevant[ev.Name] {
				timer.Reset(reloadDelay)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn("certificate watcher", "err", err)
		case <-s.kick:
			resync()
			s.reload()
		case <-timer.C:
			s.reload()
		}
	}
}

// selfSigned makes the certificate served when none is configured, so a
// client gets a handshake (and a certificate warning) rather than an
// alert, as marathon-lb's bundled default certificate does.
func selfSigned() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "keel default certificate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
