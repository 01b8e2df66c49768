package configs

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestApplyBytes(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	port := fs.Int("port", 5050, "")
	ip := fs.String("ip", "", "")
	iv := fs.Duration("allocation_interval", time.Second, "")
	res := fs.String("resolvers", "", "")
	if err := fs.Parse([]string{"--ip", "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	err := ApplyBytes(fs, "m.yaml", []byte("port: 6060\nip: 10.9.9.9\nallocation_interval: 250ms\nresolvers: [1.1.1.1, 8.8.8.8]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if *port != 6060 || *ip != "10.0.0.1" || *iv != 250*time.Millisecond || *res != "1.1.1.1,8.8.8.8" {
		t.Fatalf("got port=%d ip=%s interval=%s resolvers=%s", *port, *ip, *iv, *res)
	}
}

func TestApplyBytesErrors(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"unknown key": {"prot: 1\n", `unknown key "prot"`},
		"bad value":   {"port: many\n", `key "port"`},
		"not yaml":    {"port: [\n", "m.yaml"},
		"nested":      {"port: {a: 1}\n", `key "port"`},
	} {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.Int("port", 5050, "")
			err := ApplyBytes(fs, "m.yaml", []byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestApplyBytesSkipsSections(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	port := fs.Int("port", 5050, "")
	in := "port: 6060\nroutes:\n  tcp:\n    - port: 9000\n      backends: [10.0.0.1:5432]\n"
	if err := ApplyBytes(fs, "g.yaml", []byte(in)); err != nil {
		t.Fatalf("a routes section must not be taken for a flag: %v", err)
	}
	if *port != 6060 {
		t.Fatalf("port = %d, want 6060", *port)
	}
}
