package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// haproxyConfig writes HAProxy's configuration for spec s into dir and
// returns its path: the same routes Keel's snapshot holds, HAProxy at its
// best (nbthread 1, keep-alive and connection reuse to the servers,
// kernel splicing both ways, hosts through a map rather than marathon-lb's
// ACL list unless s.vhostStyle is "acl").
func haproxyConfig(dir string, s spec, listen string, backends []string, cert string) (string, error) {
	var b strings.Builder
	// maxconn 4000: HAProxy sizes its file limit from it (two sockets and
	// a splice pipe a connection), and must stay under the machine's 20000.
	b.WriteString(`global
  nbthread 1
  maxconn 4000
`)
	if s.tls {
		// HAProxy picks by its own order: put first the suite Go's server
		// picks on an AES-capable CPU, so both proxies encrypt alike
		// (OpenSSL's default order starts with AES-256).
		b.WriteString("  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n")
	}
	mode := "http"
	if s.kind != kindHTTP {
		mode = "tcp"
	}
	fmt.Fprintf(&b, `defaults
  mode %s
  timeout connect 5s
  timeout client 60s
  timeout server 60s
`, mode)
	if s.kind != kindHTTP {
		// Splicing both ways: measured here, it halves HAProxy's CPU per
		// GiB against no splicing or splice-auto.
		fmt.Fprintf(&b, "listen svc\n  bind %s\n  option splice-request\n  option splice-response\n  server s1 %s\n", listen, backends[0])
		return writeConfig(dir, b.String())
	}
	// Splicing here too: it cuts HAProxy's CPU per 1 MiB response by half
	// or more (Keel's HTTP path copies through user space).
	b.WriteString("  option http-keep-alive\n  http-reuse always\n  option splice-request\n  option splice-response\n")
	bind := listen
	if s.tls {
		bind += " ssl crt " + cert + " alpn http/1.1"
	}
	fmt.Fprintf(&b, "frontend fe\n  bind %s\n", bind)
	if s.apps <= 1 {
		b.WriteString("  default_backend be\nbackend be\n  balance roundrobin\n")
		for i, a := range backends {
			fmt.Fprintf(&b, "  server s%d %s\n", i, a)
		}
		return writeConfig(dir, b.String())
	}
	switch s.vhostStyle {
	case "acl":
		// marathon-lb's default template: one ACL and one use_backend per host.
		for i := 0; i < s.apps; i++ {
			fmt.Fprintf(&b, "  acl host_app%d hdr(host) -i %s\n  use_backend app%d if host_app%d\n", i, vhostName(i), i, i)
		}
	default:
		var m strings.Builder
		for i := 0; i < s.apps; i++ {
			fmt.Fprintf(&m, "%s app%d\n", vhostName(i), i)
		}
		mp := filepath.Join(dir, "hosts.map")
		if err := os.WriteFile(mp, []byte(m.String()), 0o644); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  use_backend %%[req.hdr(host),lower,map(%s)]\n", mp)
	}
	for i := 0; i < s.apps; i++ {
		fmt.Fprintf(&b, "backend app%d\n  server s1 %s\n", i, backends[i%len(backends)])
	}
	return writeConfig(dir, b.String())
}

func writeConfig(dir, cfg string) (string, error) {
	path := filepath.Join(dir, "haproxy.cfg")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// writeCert writes a self-signed ECDSA P-256 certificate for bench.local,
// *.bench.local and 127.0.0.1 as one PEM bundle (chain then key), the
// form both HAProxy's crt and Keel's certificate directory read.
func writeCert(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.local"},
		DNSNames: []string{"bench.local", "*.bench.local"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	out := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
	return os.WriteFile(path, out, 0o600)
}
