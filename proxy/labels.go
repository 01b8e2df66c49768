package proxy

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Limits of the Keel labels.
const (
	defaultRetries = 1
	maxRetries     = 10
	maxWeight      = 1_000_000
	maxTimeout     = time.Hour
)

// parseRouteLabels applies the HAPROXY_{n}_* labels beyond routing
// (REDIRECT_TO_HTTPS, USE_HSTS, STICKY, SSL_CERT, AUTH) and the KEEL_{n}_*
// labels to r. It reports each bad value through bad and returns false if
// the route must be skipped.
func parseRouteLabels(r *Route, n int, haproxy, keel func(string) (string, bool), bad func(label, value, reason string)) bool {
	hl := func(k string) string { return fmt.Sprintf("HAPROXY_%d_%s", n, k) }
	kl := func(k string) string { return fmt.Sprintf("KEEL_%d_%s", n, k) }
	ok := true
	flag := func(k string, dst *bool) {
		if v, set := haproxy(k); set {
			b, err := strconv.ParseBool(v)
			if err != nil {
				bad(hl(k), v, "not a boolean")
				ok = false
				return
			}
			*dst = b
		}
	}
	flag("REDIRECT_TO_HTTPS", &r.RedirectHTTPS)
	flag("USE_HSTS", &r.HSTS)
	flag("STICKY", &r.Sticky)
	if v, set := haproxy("SSL_CERT"); set && v != "" {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			if !filepath.IsAbs(f) {
				bad(hl("SSL_CERT"), v, "certificate paths must be absolute")
				ok = false
				break
			}
			r.SSLCerts = append(r.SSLCerts, filepath.Clean(f))
		}
	}
	if v, set := haproxy("AUTH"); set && v != "" {
		a, err := parseAuth(v)
		if err != nil {
			bad(hl("AUTH"), "(redacted)", err.Error())
			ok = false
		} else {
			r.auth, r.AuthRealm = a, a.realm
		}
	}
	integer := func(k string, lo, hi int, dst *int) {
		if v, set := keel(k); set {
			i, err := strconv.Atoi(v)
			if err != nil || i < lo || i > hi {
				bad(kl(k), v, fmt.Sprintf("not an integer in [%d, %d]", lo, hi))
				ok = false
				return
			}
			*dst = i
		}
	}
	integer("WEIGHT", 0, maxWeight, &r.Weight)
	integer("RETRIES", 0, maxRetries, &r.Retries)
	integer("MAX_CONNS", 0, 1<<30, &r.MaxConns)
	if v, set := keel("TIMEOUT_RESPONSE"); set {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxTimeout {
			bad(kl("TIMEOUT_RESPONSE"), v, "not a duration in (0, 1h]")
			ok = false
		} else {
			r.ResponseTimeout = d
		}
	}
	if v, set := keel("PATH_REWRITE"); set {
		from, to, found := strings.Cut(v, ":")
		if !found || !strings.HasPrefix(from, "/") || !strings.HasPrefix(to, "/") || strings.ContainsAny(v, "?# \t") {
			bad(kl("PATH_REWRITE"), v, "must be /old:/new")
			ok = false
		} else {
			r.RewriteFrom, r.RewriteTo = from, to
		}
	}
	return ok
}

// stickyCookie is the mesosphere_server_id value naming a backend: a hash
// of its address, so it survives table rebuilds and reveals nothing.
func stickyCookie(addr string) string {
	h := fnv.New64a()
	h.Write([]byte(addr))
	return strconv.FormatUint(h.Sum64(), 36)
}

// basicAuth checks HTTP basic credentials against one user. The password
// is a bcrypt hash ($2a$, $2b$, $2y$) or, for anything else, the password
// itself in plain text (HAProxy's insecure-password). A bcrypt check is
// slow by design, so the last credentials that passed are remembered and
// compared in constant time.
type basicAuth struct {
	realm, user, secret string
	bcrypt              bool
	challenge           string // WWW-Authenticate value
	passed              *atomic.Pointer[string]
}

func parseAuth(v string) (*basicAuth, error) {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, fmt.Errorf("must be realm:user:password-hash")
	}
	if strings.ContainsAny(parts[0], "\"\\\r\n") {
		return nil, fmt.Errorf("realm must not contain quotes, backslashes or line breaks")
	}
	a := &basicAuth{realm: parts[0], user: parts[1], secret: parts[2], passed: new(atomic.Pointer[string]),
		challenge: `Basic realm="` + parts[0] + `"`}
	for _, p := range []string{"$2a$", "$2b$", "$2y$"} {
		if strings.HasPrefix(a.secret, p) {
			if _, err := bcrypt.Cost([]byte(a.secret)); err != nil {
				return nil, fmt.Errorf("bad bcrypt hash: %w", err)
			}
			a.bcrypt = true
		}
	}
	return a, nil
}

// check reports whether an Authorization header value carries the right
// credentials.
func (a *basicAuth) check(header []byte) bool {
	const prefix = "basic "
	if len(header) < len(prefix) || !strings.EqualFold(string(header[:len(prefix)]), prefix) {
		return false
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(header[len(prefix):])))
	if err != nil {
		return false
	}
	if last := a.passed.Load(); last != nil && subtle.ConstantTimeCompare([]byte(*last), dec) == 1 {
		return true
	}
	user, pass, found := strings.Cut(string(dec), ":")
	if !found || subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) != 1 {
		return false
	}
	if a.bcrypt {
		// bcrypt treats $2y$ like $2a$ (same algorithm, PHP's name for it).
		hash := a.secret
		if strings.HasPrefix(hash, "$2y$") {
			hash = "$2a$" + hash[4:]
		}
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) != nil {
			return false
		}
	} else if subtle.ConstantTimeCompare([]byte(pass), []byte(a.secret)) != 1 {
		return false
	}
	s := string(dec)
	a.passed.Store(&s)
	return true
}
