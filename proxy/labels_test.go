package proxy

import (
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/keelhq/keel/snapshot"
)

// routeOf builds the table of one task with labels and returns its only
// route (nil if none) and the label errors.
func routeOf(t *testing.T, labels map[string]string) (*Route, []LabelError) {
	t.Helper()
	s := snapshot.Empty()
	s.Tasks = []snapshot.Task{task("/a", "a.1", "10.0.0.1", []uint32{31000}, nil, labels)}
	tab, errs := BuildTable(s, TableOptions{})
	if len(tab.routes) > 1 {
		t.Fatalf("%d routes", len(tab.routes))
	}
	if len(tab.routes) == 0 {
		return nil, errs
	}
	return tab.routes[0], errs
}

func TestRouteLabels(t *testing.T) {
	vh := func(kv ...string) map[string]string {
		m := map[string]string{"HAPROXY_0_VHOST": "a.com"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	type want struct {
		redirect, hsts, sticky bool
		certs                  []string
		realm                  string
		weight, retries, max   int
		timeout                time.Duration
		from, to               string
	}
	def := want{weight: 1, retries: 1, timeout: responseTimeout}
	cases := []struct {
		name   string
		labels map[string]string
		want   *want // nil: the route is skipped
		errs   []string
	}{
		{"defaults", vh(), &def, nil},
		{"marathon-lb flags", vh("HAPROXY_0_REDIRECT_TO_HTTPS", "true", "HAPROXY_0_USE_HSTS", "1", "HAPROXY_0_STICKY", "true",
			"HAPROXY_0_SSL_CERT", "/etc/ssl/a.pem, /etc/ssl/b.pem", "HAPROXY_0_AUTH", "Staff:alice:s3cret"),
			&want{redirect: true, hsts: true, sticky: true, certs: []string{"/etc/ssl/a.pem", "/etc/ssl/b.pem"}, realm: "Staff",
				weight: 1, retries: 1, timeout: responseTimeout}, nil},
		{"keel labels", vh("KEEL_0_WEIGHT", "9", "KEEL_0_RETRIES", "0", "KEEL_0_TIMEOUT_RESPONSE", "1500ms",
			"KEEL_0_PATH_REWRITE", "/old:/new", "KEEL_0_MAX_CONNS", "10"),
			&want{weight: 9, retries: 0, timeout: 1500 * time.Millisecond, from: "/old", to: "/new", max: 10}, nil},
		{"weight zero is allowed", vh("KEEL_0_WEIGHT", "0"), &want{weight: 0, retries: 1, timeout: responseTimeout}, nil},
		{"bad boolean", vh("HAPROXY_0_STICKY", "sometimes"), nil, []string{"HAPROXY_0_STICKY"}},
		{"relative cert path", vh("HAPROXY_0_SSL_CERT", "cert.pem"), nil, []string{"HAPROXY_0_SSL_CERT"}},
		{"auth without user", vh("HAPROXY_0_AUTH", "realm:secret"), nil, []string{"HAPROXY_0_AUTH"}},
		{"auth with broken bcrypt", vh("HAPROXY_0_AUTH", "r:u:$2y$xx"), nil, []string{"HAPROXY_0_AUTH"}},
		{"negative weight", vh("KEEL_0_WEIGHT", "-1"), nil, []string{"KEEL_0_WEIGHT"}},
		{"retries over the cap", vh("KEEL_0_RETRIES", "11"), nil, []string{"KEEL_0_RETRIES"}},
		{"timeout not a duration", vh("KEEL_0_TIMEOUT_RESPONSE", "30"), nil, []string{"KEEL_0_TIMEOUT_RESPONSE"}},
		{"timeout zero", vh("KEEL_0_TIMEOUT_RESPONSE", "0s"), nil, []string{"KEEL_0_TIMEOUT_RESPONSE"}},
		{"rewrite without colon", vh("KEEL_0_PATH_REWRITE", "/old"), nil, []string{"KEEL_0_PATH_REWRITE"}},
		{"rewrite not a path", vh("KEEL_0_PATH_REWRITE", "old:/new"), nil, []string{"KEEL_0_PATH_REWRITE"}},
		{"max conns not a number", vh("KEEL_0_MAX_CONNS", "many"), nil, []string{"KEEL_0_MAX_CONNS"}},
		{"every bad label is reported", vh("KEEL_0_MAX_CONNS", "many", "KEEL_0_WEIGHT", "x"), nil, []string{"KEEL_0_MAX_CONNS", "KEEL_0_WEIGHT"}},
		{"labels of another port do not count", vh("KEEL_1_WEIGHT", "x"), &def, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, errs := routeOf(t, c.labels)
			var labels []string
			for _, e := range errs {
				labels = append(labels, e.Label)
				if e.Label == "HAPROXY_0_AUTH" && e.Value != "(redacted)" {
					t.Errorf("auth label value reported: %q", e.Value)
				}
			}
			if len(labels) > 1 && labels[0] > labels[1] {
				labels[0], labels[1] = labels[1], labels[0]
			}
			if !reflect.DeepEqual(labels, c.errs) {
				t.Fatalf("label errors %v, want %v", labels, c.errs)
			}
			if c.want == nil {
				if r != nil {
					t.Fatalf("route kept: %+v", r)
				}
				return
			}
			if r == nil {
				t.Fatal("route skipped")
			}
			got := want{r.RedirectHTTPS, r.HSTS, r.Sticky, r.SSLCerts, r.AuthRealm, r.Weight, r.Retries, r.MaxConns, r.ResponseTimeout, r.RewriteFrom, r.RewriteTo}
			if !reflect.DeepEqual(got, *c.want) {
				t.Fatalf("got %+v\nwant %+v", got, *c.want)
			}
		})
	}
}

func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	y := "$2y$" + string(hash[4:]) // the same hash as htpasswd -B writes it
	basic := func(userpass string) []byte {
		return []byte("Basic " + base64.StdEncoding.EncodeToString([]byte(userpass)))
	}
	for _, c := range []struct {
		name, label string
		header      []byte
		ok          bool
	}{
		{"bcrypt 2a", "r:u:" + string(hash), basic("u:pw"), true},
		{"bcrypt 2y", "r:u:" + y, basic("u:pw"), true},
		{"bcrypt wrong password", "r:u:" + y, basic("u:nope"), false},
		{"bcrypt wrong user", "r:u:" + y, basic("v:pw"), false},
		{"plain", "r:u:pa:ss", basic("u:pa:ss"), true},
		{"plain wrong", "r:u:pass", basic("u:pas"), false},
		{"scheme is case-insensitive", "r:u:pass", []byte("basic " + base64.StdEncoding.EncodeToString([]byte("u:pass"))), true},
		{"not basic", "r:u:pass", []byte("Bearer x"), false},
		{"bad base64", "r:u:pass", []byte("Basic !!!"), false},
		{"no header", "r:u:pass", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := parseAuth(c.label)
			if err != nil {
				t.Fatal(err)
			}
			// Twice: the second answer comes from the remembered credentials.
			for i := 0; i < 2; i++ {
				if got := a.check(c.header); got != c.ok {
					t.Fatalf("check #%d = %v, want %v", i, got, c.ok)
				}
			}
		})
	}
}
