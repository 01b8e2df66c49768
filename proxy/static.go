package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
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
// in /v1/routes. A cluster app of the same ID wins over the static route.
const staticPrefix = "/keel-static/"

// staticFileLabel is set on the synthetic apps of static routes, to the
// routes file they came from: /v1/routes reads it to tell static routes
// from the cluster's.
const staticFileLabel = "keel.routes_file"

// routesFileApp and routesFileLabel name a refused routes file among the
// label errors.
const (
	routesFileApp   = "/keel-static"
	routesFileLabel = "routes_file"
)

// StaticRoutes are routes from a file rather than from the cluster: the
// `routes` section of the gateway's config file.
type StaticRoutes struct {
	// HTTP are virtual-host routes.
	HTTP []StaticHTTP `yaml:"http" json:"http"`
	// TCP are TCP service ports.
	TCP []StaticPort `yaml:"tcp" json:"tcp"`
	// UDP are UDP service ports.
	UDP []StaticPort `yaml:"udp" json:"udp"`

	file string // where the routes were read from, for staticFileLabel
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
// wins: a static route whose app ID, vhost + path or service port the
// snapshot already has is left out and reported, and so is one that
// clashes with a static route before it. Service ports clash when their
// protocol and port number are the same and their bind addresses are, or
// one of them is the wildcard (0.0.0.0, ::), since the second could not be
// bound. snap is not modified.
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
	clusterApps := map[string]bool{}
	for i := range snap.Tasks {
		clusterApps[snap.Tasks[i].Group()] = true
	}
	paths := map[string]owner{}
	for _, r := range taken.routes {
		for _, h := range r.VHosts {
			paths[h+"\x00"+r.Path] = owner{app: r.App}
		}
	}
	var errs []LabelError
	conflict := func(app, label, value, reason string) {
		errs = append(errs, LabelError{App: app, Label: label, Value: value, Reason: reason})
	}
	out := *snap
	out.Tasks = slices.Clone(snap.Tasks)
	add := func(app string, backends []string, proto string, labels map[string]string) {
		labels["HAPROXY_GROUP"] = group
		labels[staticFileLabel] = sr.file
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
		if clusterApps[app] {
			conflict(app, "routes.http", app, "app ID already used by the cluster, which wins")
			continue
		}
		for _, v := range h.VHosts {
			if other, ok := paths[v+"\x00"+h.Path]; ok {
				conflict(app, "routes.http", v+h.Path, "already served by "+other.String())
				continue http
			}
		}
		for _, v := range h.VHosts {
			paths[v+"\x00"+h.Path] = owner{app: app, static: true}
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
	ports := func(proto string, ps []StaticPort, cluster map[string]*Route) {
		var bound []boundPort
		for _, listen := range slices.Sorted(maps.Keys(cluster)) {
			bound = append(bound, newBoundPort(listen, owner{app: cluster[listen].App}))
		}
		for _, sp := range ps {
			app := staticPrefix + sp.Name
			if clusterApps[app] {
				conflict(app, "routes."+proto, app, "app ID already used by the cluster, which wins")
				continue
			}
			bind := sp.Bind
			if bind == "" {
				bind = opts.ServiceBind
			}
			b := newBoundPort(net.JoinHostPort(bind, strconv.Itoa(sp.Port)), owner{app: app, static: true})
			if i := slices.IndexFunc(bound, b.clashes); i >= 0 {
				other := bound[i]
				reason := "already served by " + other.owner.String()
				if other.listen != b.listen {
					reason = "cannot be bound beside " + other.listen + " of " + other.owner.String()
				}
				conflict(app, "routes."+proto, b.listen, reason)
				continue
			}
			bound = append(bound, b)
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

// owner is who has a route, for the conflicts MergeStatic reports.
type owner struct {
	app    string
	static bool // an earlier static route, else the cluster's
}

func (o owner) String() string {
	if o.static {
		return o.app + ", earlier in the routes file"
	}
	return o.app + " from the cluster, which wins"
}

// boundPort is a service port listener address and who has it.
type boundPort struct {
	listen string // "ip:port"
	ip     netip.Addr
	port   uint16
	owner  owner
}

func newBoundPort(listen string, o owner) boundPort {
	b := boundPort{listen: listen, owner: o}
	if ap, err := netip.ParseAddrPort(listen); err == nil {
		b.ip, b.port = ap.Addr().Unmap(), ap.Port()
	}
	return b
}

// clashes reports whether o and b cannot both be bound: the same address,
// or the same port where one binds the wildcard (:: also takes IPv4, as
// Linux binds it dual-stack by default).
func (b boundPort) clashes(o boundPort) bool {
	if b.listen == o.listen {
		return true
	}
	if !b.ip.IsValid() || !o.ip.IsValid() || b.port != o.port {
		return false
	}
	wild := func(w, x netip.Addr) bool { return w.IsUnspecified() && (w.Is6() || x.Is4()) }
	return b.ip == o.ip || wild(b.ip, o.ip) || wild(o.ip, b.ip)
}

// Static feeds a proxy the cluster's snapshots merged with the static
// routes of a file, and follows the file: a change is served within
// moments, a broken file is logged and the last good routes keep serving.
// Static routes left out and a refused file are shown among the proxy's
// label errors (/v1/routes).
type Static struct {
	p    *Proxy
	file string

	mu      sync.Mutex
	routes  *StaticRoutes
	raw     []byte
	snap    *snapshot.Snapshot
	errs    []LabelError // static routes left out
	fileErr []LabelError // why the file on disk is not the one serving
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
	s.routes.file = s.file
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

// Errors are the static routes left out because the cluster (or a static
// route before them) serves their vhost + path or port, and why the
// routes file was refused if it was.
func (s *Static) Errors() []LabelError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Concat(s.errs, s.fileErr)
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
	s.p.update(merged, slices.Concat(s.errs, s.fileErr))
}

// refused records why the file on disk is not serving (nil: it is) and
// republishes when that changed. Caller holds s.mu.
func (s *Static) refused(err error) {
	var errs []LabelError
	if err != nil {
		parts := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			parts = j.Unwrap()
		}
		for _, e := range parts {
			errs = append(errs, LabelError{App: routesFileApp, Label: routesFileLabel, Value: s.file,
				Reason: strings.TrimPrefix(e.Error(), "proxy: routes: ") + "; the last good routes keep serving"})
		}
	}
	if slices.Equal(errs, s.fileErr) {
		return
	}
	s.fileErr = errs
	s.publish()
}

// reload rereads the file; it keeps the last good routes if it is broken.
func (s *Static) reload() {
	raw, err := os.ReadFile(s.file)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.p.log.Error("cannot read routes file: keeping the last good routes", "file", s.file, "err", err)
		s.refused(fmt.Errorf("cannot read it: %w", err))
		return
	}
	if bytes.Equal(raw, s.raw) {
		s.refused(nil)
		return
	}
	routes, err := ParseStaticRoutes(raw)
	if err != nil {
		s.p.log.Error("broken routes file: keeping the last good routes", "file", s.file, "err", err)
		s.refused(err)
		return
	}
	routes.file = s.file
	s.raw, s.routes, s.fileErr = raw, routes, nil
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
	// A change made after NewStatic read the file, before the watch was
	// in place, sent no event: read it again now.
	s.reload()
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
