package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"gopkg.in/yaml.v3"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/snapshot"
)

// staticPrefix starts the app ID of every static route, so they stand out
// in /v1/routes and never collide with a Marathon app.
const staticPrefix = "/keel-static/"

// StaticRoutes are routes from a file rather than from the cluster: the
// `routes` section of the gateway's config file.
type StaticRoutes struct {
	// HTTP are virtual-host routes.
	HTTP []StaticHTTP `yaml:"http" json:"http"`
	// TCP are TCP service ports.
	TCP []StaticPort `yaml:"tcp" json:"tcp"`
	// UDP are UDP service ports.
	UDP []StaticPort `yaml:"udp" json:"udp"`
}

// StaticHTTP is one static virtual-host route.
type StaticHTTP struct {
	// Name names the route (app ID /keel-static/<name>); default http-<index>.
	Name string `yaml:"name" json:"name"`
	// VHosts are the route's hosts (HAPROXY_{n}_VHOST); at least one.
	VHosts []string `yaml:"vhost" json:"vhost"`
	// Path is the path prefix (HAPROXY_{n}_PATH).
	Path string `yaml:"path" json:"path,omitempty"`
	// Backends are host:port addresses; at least one.
	Backends []string `yaml:"backends" json:"backends"`
	// Balance is roundrobin (default), leastconn, random or source.
	Balance string `yaml:"balance" json:"balance,omitempty"`
	// RedirectHTTPS answers plain HTTP with a 301 to https.
	RedirectHTTPS bool `yaml:"redirect_to_https" json:"redirect_to_https,omitempty"`
	// HSTS adds Strict-Transport-Security to HTTPS responses.
	HSTS bool `yaml:"hsts" json:"hsts,omitempty"`
	// SSLCerts are absolute paths of PEM bundles served for the vhosts.
	SSLCerts []string `yaml:"ssl_cert" json:"ssl_cert,omitempty"`
}

// StaticPort is one static TCP or UDP service port.
type StaticPort struct {
	// Name names the route (app ID /keel-static/<name>); default tcp-<port> or udp-<port>.
	Name string `yaml:"name" json:"name"`
	// Port is the service port.
	Port int `yaml:"port" json:"port"`
	// Bind is the listener's IP (default: the gateway's --service_bind).
	Bind string `yaml:"bind" json:"bind,omitempty"`
	// Backends are host:port addresses; at least one.
	Backends []string `yaml:"backends" json:"backends"`
	// Balance is roundrobin (default), leastconn, random or source.
	Balance string `yaml:"balance" json:"balance,omitempty"`
}

// ParseStaticRoutes reads the `routes` section of a YAML file (other
// top-level keys are ignored; no section is no routes). Unknown keys,
// bad addresses and routes that clash with each other are errors.
func ParseStaticRoutes(data []byte) (*StaticRoutes, error) {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("proxy: routes: %w", err)
	}
	sr := &StaticRoutes{}
	node, ok := top["routes"]
	if !ok || node.Kind == 0 || (node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
		return sr, nil
	}
	// Strict decoding: a misspelt key must not silently drop a setting.
	raw, err := yaml.Marshal(&node)
	if err != nil {
		return nil, fmt.Errorf("proxy: routes: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(sr); err != nil {
		return nil, fmt.Errorf("proxy: routes: %w", err)
	}
	if err := sr.validate(); err != nil {
		return nil, err
	}
	return sr, nil
}

func (sr *StaticRoutes) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("proxy: routes: "+format, args...)) }
	names := map[string]bool{}
	name := func(where, n string) {
		if strings.ContainsAny(n, "/ \t") {
			bad("%s: name %q must not contain slashes or spaces", where, n)
		}
		if names[n] {
			bad("%s: name %q used twice", where, n)
		}
		names[n] = true
	}
	backends := func(where string, bs []string) {
		if len(bs) == 0 {
			bad("%s: no backends", where)
		}
		for _, b := range bs {
			host, port, err := net.SplitHostPort(b)
			if p, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || p <= 0 || p > 65535 {
				bad("%s: backend %q is not host:port", where, b)
			}
		}
	}
	balance := func(where, b string) {
		if b != "" && !balances[b] {
			bad("%s: unknown balance %q (roundrobin, leastconn, random, source)", where, b)
		}
	}
	seen := map[string]string{}
	for i := range sr.HTTP {
		h := &sr.HTTP[i]
		if h.Name == "" {
			h.Name = fmt.Sprintf("http-%d", i)
		}
		where := "http[" + h.Name + "]"
		name(where, h.Name)
		if len(h.VHosts) == 0 {
			bad("%s: no vhost", where)
		}
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			bad("%s: path %q must start with /", where, h.Path)
		}
		for j, v := range h.VHosts {
			v = strings.ToLower(strings.TrimSpace(v))
			h.VHosts[j] = v
			if v == "" || strings.ContainsAny(v, ", /") {
				bad("%s: bad vhost %q", where, v)
			}
			if other, dup := seen[v+h.Path]; dup {
				bad("%s: vhost %s path %q also in %s", where, v, h.Path, other)
			}
			seen[v+h.Path] = where
		}
		for _, c := range h.SSLCerts {
			if !filepath.IsAbs(c) {
				bad("%s: certificate path %q must be absolute", where, c)
			}
		}
		backends(where, h.Backends)
		balance(where, h.Balance)
	}
	ports := func(proto string, ps []StaticPort) {
		used := map[string]string{}
		for i := range ps {
			sp := &ps[i]
			if sp.Name == "" {
				sp.Name = fmt.Sprintf("%s-%d", proto, sp.Port)
			}
			where := proto + "[" + sp.Name + "]"
			name(where, sp.Name)
			if sp.Port <= 0 || sp.Port > 65535 {
				bad("%s: port %d is not a port number", where, sp.Port)
			}
			if sp.Bind != "" && net.ParseIP(sp.Bind) == nil {
				bad("%s: bind %q is not an IP", where, sp.Bind)
			}
			key := sp.Bind + ":" + strconv.Itoa(sp.Port)
			if other, dup := used[key]; dup {
				bad("%s: port %d also in %s", where, sp.Port, other)
			}
			used[key] = where
			backends(where, sp.Backends)
			balance(where, sp.Balance)
		}
	}
	ports("tcp", sr.TCP)
	ports("udp", sr.UDP)
	return errors.Join(errs...)
}

// MergeStatic returns snap with the static routes added as synthetic
// Marathon-like apps (/keel-static/<name>, one running task per backend,
// marathon-lb labels), for BuildTable with opts to route. The snapshot
// wins: a static route whose vhost + path or service port the snapshot
// already serves is left out and reported. snap is not modified.
func MergeStatic(snap *snapshot.Snapshot, sr *StaticRoutes, opts TableOptions) (*snapshot.Snapshot, []LabelError) {
	if sr == nil || len(sr.HTTP)+len(sr.TCP)+len(sr.UDP) == 0 {
		return snap, nil
	}
	if opts.ServiceBind == "" {
		opts.ServiceBind = "0.0.0.0"
	}
	group := opts.Group
	if group == "" || group == "*" {
		group = "external"
	}
	taken, _ := BuildTable(snap, opts)
	paths := map[string]string{}
	for _, r := range taken.routes {
		for _, h := range r.VHosts {
			paths[h+"\x00"+r.Path] = r.App
		}
	}
	var errs []LabelError
	conflict := func(app, label, value, other string) {
		errs = append(errs, LabelError{App: app, Label: label, Value: value,
			Reason: "already served by " + other + " from the cluster, which wins"})
	}
	out := *snap
	out.Tasks = slices.Clone(snap.Tasks)
	add := func(app string, backends []string, proto string, labels map[string]string) {
		labels["HAPROXY_GROUP"] = group
		for i, b := range backends {
			host, port, _ := net.SplitHostPort(b)
			n, _ := strconv.Atoi(port)
			out.Tasks = append(out.Tasks, snapshot.Task{ID: fmt.Sprintf("%s.%d", strings.TrimPrefix(app, "/"), i),
				Name: strings.TrimPrefix(app, staticPrefix), AppID: app, FrameworkID: "keel-static", AgentIP: host,
				State: mesos.TaskRunning, Labels: labels, Ports: []snapshot.Port{{Number: uint32(n), Protocol: proto}}})
		}
	}
http:
	for _, h := range sr.HTTP {
		app := staticPrefix + h.Name
		for _, v := range h.VHosts {
			if other, ok := paths[v+"\x00"+h.Path]; ok {
				conflict(app, "routes.http", v+h.Path, other)
				continue http
			}
		}
		l := map[string]string{"HAPROXY_0_VHOST": strings.Join(h.VHosts, ",")}
		if h.Path != "" {
			l["HAPROXY_0_PATH"] = h.Path
		}
		if h.RedirectHTTPS {
			l["HAPROXY_0_REDIRECT_TO_HTTPS"] = "true"
		}
		if h.HSTS {
			l["HAPROXY_0_USE_HSTS"] = "true"
		}
		if h.Balance != "" {
			l["HAPROXY_0_BALANCE"] = h.Balance
		}
		if len(h.SSLCerts) > 0 {
			l["HAPROXY_0_SSL_CERT"] = strings.Join(h.SSLCerts, ",")
		}
		add(app, h.Backends, "tcp", l)
	}
	ports := func(proto string, ps []StaticPort, used map[string]*Route) {
		for _, sp := range ps {
			app := staticPrefix + sp.Name
			bind := sp.Bind
			if bind == "" {
				bind = opts.ServiceBind
			}
			listen := net.JoinHostPort(bind, strconv.Itoa(sp.Port))
			if other := used[listen]; other != nil {
				conflict(app, "routes."+proto, listen, other.App)
				continue
			}
			l := map[string]string{"HAPROXY_0_PORT": strconv.Itoa(sp.Port), "HAPROXY_0_BIND_ADDR": bind}
			if sp.Balance != "" {
				l["HAPROXY_0_BALANCE"] = sp.Balance
			}
			if proto == "tcp" {
				l["HAPROXY_0_MODE"] = "tcp"
			}
			add(app, sp.Backends, proto, l)
		}
	}
	ports("tcp", sr.TCP, taken.services)
	ports("udp", sr.UDP, taken.udp)
	return &out, errs
}

// Static feeds a proxy the cluster's snapshots merged with the static
// routes of a file, and follows the file: a change is served within
// moments, a broken file is logged and the last good routes keep serving.
type Static struct {
	p    *Proxy
	file string

	mu     sync.Mutex
	routes *StaticRoutes
	raw    []byte
	snap   *snapshot.Snapshot
	errs   []LabelError
}

// NewStatic reads the routes section of file for p. A file that cannot be
// read or parsed is an error here (later, only a logged one).
func (p *Proxy) NewStatic(file string) (*Static, error) {
	s := &Static{p: p, file: filepath.Clean(file)}
	raw, err := os.ReadFile(s.file)
	if err != nil {
		return nil, fmt.Errorf("proxy: routes: %w", err)
	}
	if s.routes, err = ParseStaticRoutes(raw); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, s.file)
	}
	s.raw = raw
	return s, nil
}

// Update takes the cluster's snapshot: feed it to Static in place of the
// proxy's own Update.
func (s *Static) Update(snap *snapshot.Snapshot) {
	if snap == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = snap
	s.publish()
}

// Errors are the static routes left out because the cluster serves their
// vhost + path or port.
func (s *Static) Errors() []LabelError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// publish gives the proxy the merged snapshot. Caller holds s.mu.
func (s *Static) publish() {
	snap := s.snap
	if snap == nil {
		snap = snapshot.Empty()
	}
	merged, errs := MergeStatic(snap, s.routes, s.p.tableOptions())
	if !slices.Equal(errs, s.errs) {
		for _, e := range errs {
			s.p.log.Warn("ignoring static route", "app", e.App, "route", e.Label, "value", e.Value, "reason", e.Reason)
		}
	}
	s.errs = errs
	s.p.Update(merged)
}

// reload rereads the file; it keeps the last good routes if it is broken.
func (s *Static) reload() {
	raw, err := os.ReadFile(s.file)
	if err != nil {
		s.p.log.Error("cannot read routes file: keeping the last good routes", "file", s.file, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(raw, s.raw) {
		return
	}
	routes, err := ParseStaticRoutes(raw)
	if err != nil {
		s.p.log.Error("broken routes file: keeping the last good routes", "file", s.file, "err", err)
		return
	}
	s.raw, s.routes = raw, routes
	s.p.log.Info("static routes reloaded", "file", s.file, "http", len(routes.HTTP), "tcp", len(routes.TCP), "udp", len(routes.UDP))
	s.publish()
}

// Run serves the static routes (before any snapshot too) and follows the
// file until ctx is done. It watches the file's directory, so editors that
// replace the file and ConfigMap-style symlink swaps are seen.
func (s *Static) Run(ctx context.Context) error {
	s.mu.Lock()
	s.publish()
	s.mu.Unlock()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("proxy: routes watcher: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(s.file)); err != nil {
		return fmt.Errorf("proxy: routes watcher: %w", err)
	}
	// Writes come in bursts: reload once they settle.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-w.Events:
			if !ok {
				return nil
			}
			timer.Reset(50 * time.Millisecond)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.p.log.Warn("routes watcher", "err", err)
			timer.Reset(50 * time.Millisecond)
		case <-timer.C:
			s.reload()
		}
	}
}
