package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// genCert returns a PEM bundle (certificate then key) of a self-signed
// certificate whose common name is tag, for names.
func genCert(t *testing.T, tag string, names ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: tag},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	// Write then rename, as certificate tools do, so a reader never sees
	// half a file.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// served returns the common name of the certificate addr serves for sni.
func served(t *testing.T, addr, sni string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake %q: %v", sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestCertStoreSNI(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.pem"), genCert(t, "A", "www.example.com"))
	writeFile(t, filepath.Join(dir, "b.pem"), genCert(t, "B", "*.example.com", "example.org"))
	writeFile(t, filepath.Join(dir, "default.pem"), genCert(t, "D", "default.test"))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not a cert"))
	s, err := newCertStore(dir, slog.New(slog.DiscardHandler), newMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ sni, want string }{
		{"www.example.com", "A"},  // exact beats wildcard
		{"WWW.Example.COM.", "A"}, // case and trailing dot
		{"api.example.com", "B"},  // wildcard
		{"a.b.example.com", "D"},  // a wildcard covers one label only
		{"example.com", "D"},      // nor the bare domain
		{"example.org", "B"},      // a second name of the same file
		{"", "D"},                 // no SNI
		{"unknown.test", "D"},     // default.pem
		{"default.test", "D"},
	} {
		got, err := s.getCertificate(&tls.ClientHelloInfo{ServerName: c.sni})
		if err != nil {
			t.Fatal(err)
		}
		if cn := got.Leaf.Subject.CommonName; cn != c.want {
			t.Errorf("SNI %q: served %s, want %s", c.sni, cn, c.want)
		}
	}
	if _, err := newCertStore(filepath.Join(dir, "missing"), slog.New(slog.DiscardHandler), newMetrics(nil)); err == nil {
		t.Fatal("a missing certificate directory was accepted")
	}
	// No certificates at all: a generated default still completes handshakes.
	empty, err := newCertStore("", slog.New(slog.DiscardHandler), newMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := empty.getCertificate(&tls.ClientHelloInfo{ServerName: "x.test"}); c == nil || c.Leaf.Subject.CommonName != "keel default certificate" {
		t.Fatalf("fallback certificate: %v", c)
	}
}

// waitServed polls until addr serves want for sni.
func waitServed(t *testing.T, addr, sni, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := served(t, addr, sni)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SNI %q: still served %s, want %s", sni, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHTTPS(t *testing.T) {
	dir := t.TempDir()
	appDir := t.TempDir()
	writeFile(t, filepath.Join(dir, "site.pem"), genCert(t, "site-1", "web.example.com"))
	p, httpURL, httpsURL := startWith(t, func(c *Config) { c.HTTPSAddr, c.SSLCertsDir = "auto", dir })
	addr := strings.TrimPrefix(httpsURL, "https://")
	var seen sync.Map
	_, port := backend(t, "b0", &seen)
	appCert := filepath.Join(appDir, "app.pem")
	writeFile(t, appCert, genCert(t, "app-1", "app.example.com"))
	p.Update(snap(1,
		task("/web", "web.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "web.example.com", "HAPROXY_0_USE_HSTS": "true"}),
		task("/app", "app.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "app.example.com",
			"HAPROXY_0_SSL_CERT": appCert, "HAPROXY_0_REDIRECT_TO_HTTPS": "true"})))

	// The certificate directory and an app's own certificate, by SNI.
	waitServed(t, addr, "web.example.com", "site-1")
	waitServed(t, addr, "app.example.com", "app-1")

	// A request over TLS reaches the backend with the forwarding headers,
	// and HSTS comes back on HTTPS only.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	do := func(url, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := do(httpsURL+"/x?y=1", "web.example.com")
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https: %d %v", resp.StatusCode, resp.TLS)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=15768000" {
		t.Fatalf("HSTS header %q", got)
	}
	h, _ := seen.Load("b0")
	_, httpsPort, _ := net.SplitHostPort(addr)
	if hdr := h.(http.Header); hdr.Get("X-Forwarded-Proto") != "https" || hdr.Get("X-Forwarded-Port") != httpsPort {
		t.Fatalf("forwarding headers over https: %v", hdr)
	}
	if resp := do(httpURL+"/", "web.example.com"); resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Fatalf("plain http: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	h, _ = seen.Load("b0")
	if hdr := h.(http.Header); hdr.Get("X-Forwarded-Proto") != "http" {
		t.Fatalf("forwarding headers over http: %v", hdr)
	}

	// REDIRECT_TO_HTTPS: 301 keeping host, path and query; https serves.
	resp = do(httpURL+"/a/b?c=d&e", "app.example.com:8000")
	if want := "https://app.example.com:" + httpsPort + "/a/b?c=d&e"; resp.StatusCode != 301 || resp.Header.Get("Location") != want {
		t.Fatalf("redirect: %d %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if resp := do(httpsURL+"/a", "app.example.com"); resp.StatusCode != 200 {
		t.Fatalf("https after redirect: %d", resp.StatusCode)
	}

	// A new certificate replaces the old one without a restart.
	writeFile(t, filepath.Join(dir, "site.pem"), genCert(t, "site-2", "web.example.com"))
	waitServed(t, addr, "web.example.com", "site-2")
	writeFile(t, appCert, genCert(t, "app-2", "app.example.com"))
	waitServed(t, addr, "app.example.com", "app-2")

	// A broken file is logged and the previous certificate kept.
	before := p.certs.reloads.Load()
	writeFile(t, filepath.Join(dir, "site.pem"), []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"))
	deadline := time.Now().Add(10 * time.Second)
	for p.certs.reloads.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("broken certificate never re-read")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := served(t, addr, "web.example.com"); got != "site-2" {
		t.Fatalf("after a broken file: served %s, want the previous site-2", got)
	}
	// A file added to the directory is picked up.
	writeFile(t, filepath.Join(dir, "new.pem"), genCert(t, "new-1", "new.example.com"))
	waitServed(t, addr, "new.example.com", "new-1")
	// Dropping the app drops its certificate.
	p.Update(snap(2, task("/web", "web.1", "127.0.0.1", []uint32{port}, nil, map[string]string{"HAPROXY_0_VHOST": "web.example.com"})))
	waitServed(t, addr, "app.example.com", "new-1") // the default: new.pem is now the first by name
}
