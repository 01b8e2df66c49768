package proxy

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keelhq/keel/snapshot"
)

// TableOptions are the builder's parameters.
type TableOptions struct {
	// Group is the marathon-lb group served ("*" for all).
	Group string
	// HealthyOnly routes only to healthy tasks when they have health checks.
	HealthyOnly bool
	// ServiceBind is the default bind IP of service port listeners.
	ServiceBind string
}

// Table is one immutable routing table.
type Table struct {
	Generation uint64
	vhosts     map[string]*vhost // exact, lowercase
	wildcards  []wildcard        // longest suffix first
	services   map[string]*Route // TCP, by listener address "ip:port"
	udp        map[string]*Route // UDP, by listener address "ip:port"
	routes     []*Route          // every route, for the admin API
}

type vhost struct {
	paths []*pathEntry // longest path first
}

// pathEntry is the routes sharing one vhost and path prefix: one app, or
// several split by KEEL_{n}_WEIGHT (canaries).
type pathEntry struct {
	path   string
	routes []*Route
	cum    []uint64 // cumulative weights, parallel to routes
	total  uint64
	next   *atomic.Uint64
}

type wildcard struct {
	suffix string // ".example.com"
	vh     *vhost
}

// Route is where one app port's traffic goes. It is immutable once its
// table is published; the counters it points to are the only shared state.
type Route struct {
	App       string            `json:"app"`
	PortIndex int               `json:"port_index"`
	Mode      string            `json:"mode"` // http, tcp; udp for a port of protocol udp only
	VHosts    []string          `json:"vhosts,omitempty"`
	Path      string            `json:"path,omitempty"`
	Listen    string            `json:"listen,omitempty"` // service port listener "ip:port"
	Balance   string            `json:"balance"`
	Backends  []Backend         `json:"backends"`
	Labels    map[string]string `json:"labels,omitempty"`

	// Protocol is the app port's: tcp, udp, or udp,tcp (a listener of each).
	Protocol string `json:"protocol"`
	// RedirectHTTPS answers plain HTTP with a 301 to https (HAPROXY_{n}_REDIRECT_TO_HTTPS).
	RedirectHTTPS bool `json:"redirect_to_https,omitempty"`
	// HSTS adds Strict-Transport-Security to HTTPS responses (HAPROXY_{n}_USE_HSTS).
	HSTS bool `json:"hsts,omitempty"`
	// Sticky pins a client to a backend by the mesosphere_server_id cookie (HAPROXY_{n}_STICKY).
	Sticky bool `json:"sticky,omitempty"`
	// SSLCerts are certificate files the HTTPS listener serves for this route (HAPROXY_{n}_SSL_CERT).
	SSLCerts []string `json:"ssl_certs,omitempty"`
	// AuthRealm is the basic-auth realm when HAPROXY_{n}_AUTH is set.
	AuthRealm string `json:"auth_realm,omitempty"`
	// Weight is this route's share of a vhost+path shared with other apps (KEEL_{n}_WEIGHT).
	Weight int `json:"weight"`
	// Retries is how many other backends a request that never reached one may try (KEEL_{n}_RETRIES).
	Retries int `json:"retries"`
	// ResponseTimeout bounds a backend's response (KEEL_{n}_TIMEOUT_RESPONSE).
	ResponseTimeout time.Duration `json:"response_timeout_ns"`
	// RewriteFrom and RewriteTo replace a path prefix before forwarding (KEEL_{n}_PATH_REWRITE).
	RewriteFrom string `json:"rewrite_from,omitempty"`
	RewriteTo   string `json:"rewrite_to,omitempty"`
	// MaxConns caps the route's concurrent requests; more get 503 (KEEL_{n}_MAX_CONNS, 0 = no cap).
	MaxConns int `json:"max_conns,omitempty"`

	auth    *basicAuth
	metrics *appMetrics // attached by Proxy.Update; nil in a table nobody published
	next    *atomic.Uint64
	active  *atomic.Int64
}

// Backend is one task endpoint.
type Backend struct {
	Addr   string `json:"addr"`
	TaskID string `json:"task_id"`
	cookie string // the sticky cookie value naming this backend
	client *backendClient
}

// LabelError is a label that could not be used.
type LabelError struct {
	App    string `json:"app"`
	Label  string `json:"label"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// lookup finds the vhost of a lowercase host without port.
func (t *Table) lookup(host string) *vhost {
	if vh := t.vhosts[host]; vh != nil {
		return vh
	}
	for _, w := range t.wildcards {
		if strings.HasSuffix(host, w.suffix) && len(host) > len(w.suffix) {
			return w.vh
		}
	}
	return nil
}

// match returns the route with the longest path prefix of path; routes
// sharing that prefix take turns in proportion to their weights.
func (v *vhost) match(path []byte) *Route {
	for _, e := range v.paths {
		if e.path == "" || hasPrefix(path, e.path) {
			return e.pick()
		}
	}
	return nil
}

func (e *pathEntry) pick() *Route {
	if len(e.routes) == 1 || e.total == 0 {
		return e.routes[0]
	}
	n := (e.next.Add(1) - 1) % e.total
	for i, c := range e.cum {
		if n < c {
			return e.routes[i]
		}
	}
	return e.routes[len(e.routes)-1]
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

var balances = map[string]bool{"roundrobin": true, "leastconn": true, "random": true, "source": true}

// BuildTable turns a snapshot into a routing table. It is pure. Bad labels
// are reported and skip only the port they are on.
func BuildTable(snap *snapshot.Snapshot, opts TableOptions) (*Table, []LabelError) {
	t := &Table{Generation: snap.Generation, vhosts: map[string]*vhost{}, services: map[string]*Route{}, udp: map[string]*Route{}}
	var errs []LabelError
	if opts.ServiceBind == "" {
		opts.ServiceBind = "0.0.0.0"
	}
	if opts.Group == "" {
		opts.Group = "external"
	}
	// Collect each app's tasks; its labels come from its newest task
	// (preferring routable ones) so a deploy switches labels with it.
	type app struct {
		id    string
		label *snapshot.Task
		tasks []*snapshot.Task
	}
	apps := map[string]*app{}
	for i := range snap.Tasks {
		tk := &snap.Tasks[i]
		a := apps[tk.Group()]
		if a == nil {
			a = &app{id: tk.Group()}
			apps[tk.Group()] = a
		}
		a.tasks = append(a.tasks, tk)
		r := tk.Routable(opts.HealthyOnly)
		if a.label == nil || (r && !a.label.Routable(opts.HealthyOnly)) ||
			(r == a.label.Routable(opts.HealthyOnly) && tk.StartedAt.After(a.label.StartedAt)) {
			a.label = tk
		}
	}
	ids := make([]string, 0, len(apps))
	for id := range apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	vhostRoutes := map[string][]*Route{}
	for _, id := range ids {
		a := apps[id]
		labels := a.label.Labels
		bad := func(label, value, reason string) {
			errs = append(errs, LabelError{App: id, Label: label, Value: value, Reason: reason})
		}
		for n, port := range a.label.Ports {
			get := func(k string) (string, bool) {
				v, ok := labels[fmt.Sprintf("HAPROXY_%d_%s", n, k)]
				return strings.TrimSpace(v), ok
			}
			group, ok := get("GROUP")
			if !ok {
				group, ok = labels["HAPROXY_GROUP"]
			}
			if !ok {
				group = "external"
			}
			if !inGroup(group, opts.Group) {
				continue
			}
			if v, ok := get("ENABLED"); ok {
				on, err := strconv.ParseBool(v)
				if err != nil {
					bad(fmt.Sprintf("HAPROXY_%d_ENABLED", n), v, "not a boolean")
					continue
				}
				if !on {
					continue
				}
			}
			r := &Route{App: id, PortIndex: n, Mode: "tcp", Balance: "roundrobin", Labels: labels,
				Weight: 1, Retries: defaultRetries, ResponseTimeout: responseTimeout, next: new(atomic.Uint64), active: new(atomic.Int64)}
			servicePort := int(port.ServicePort)
			if v, ok := get("PORT"); ok {
				p, err := strconv.Atoi(v)
				if err != nil || p <= 0 || p > 65535 {
					bad(fmt.Sprintf("HAPROXY_%d_PORT", n), v, "not a port number")
					continue
				}
				servicePort = p
			}
			if v, ok := get("BALANCE"); ok {
				if !balances[v] {
					bad(fmt.Sprintf("HAPROXY_%d_BALANCE", n), v, "unknown balance algorithm (roundrobin, leastconn, random, source)")
					continue
				}
				r.Balance = v
			}
			bind := opts.ServiceBind
			if v, ok := get("BIND_ADDR"); ok {
				if net.ParseIP(v) == nil {
					bad(fmt.Sprintf("HAPROXY_%d_BIND_ADDR", n), v, "not an IP address")
					continue
				}
				bind = v
			}
			overTCP, overUDP := portProtocols(port.Protocol)
			r.Protocol = port.Protocol
			if !overTCP {
				// Only datagrams: neither HTTP nor a TCP mode applies.
				r.Mode, r.Protocol = "udp", "udp"
				if v, ok := get("VHOST"); ok && v != "" {
					bad(fmt.Sprintf("HAPROXY_%d_VHOST", n), v, "a udp port cannot have virtual hosts")
					continue
				}
				if v, ok := get("MODE"); ok {
					bad(fmt.Sprintf("HAPROXY_%d_MODE", n), v, "a udp port has no mode")
					continue
				}
			} else if overUDP {
				r.Protocol = "udp,tcp"
			} else {
				r.Protocol = "tcp"
			}
			if v, ok := get("VHOST"); ok && v != "" {
				r.Mode = "http"
				for _, h := range strings.Split(v, ",") {
					if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
						r.VHosts = append(r.VHosts, h)
					}
				}
			}
			if v, ok := get("MODE"); ok {
				if v != "http" && v != "tcp" {
					bad(fmt.Sprintf("HAPROXY_%d_MODE", n), v, "must be http or tcp")
					continue
				}
				r.Mode = v
			}
			if v, ok := get("PATH"); ok && v != "" {
				if !strings.HasPrefix(v, "/") {
					bad(fmt.Sprintf("HAPROXY_%d_PATH", n), v, "must start with /")
					continue
				}
				r.Path = v
			}
			keel := func(k string) (string, bool) {
				v, ok := labels[fmt.Sprintf("KEEL_%d_%s", n, k)]
				return strings.TrimSpace(v), ok
			}
			if !parseRouteLabels(r, n, get, keel, bad) {
				continue
			}
			for _, tk := range a.tasks {
				if !tk.Routable(opts.HealthyOnly) || n >= len(tk.Ports) || tk.AgentIP == "" {
					continue
				}
				addr := net.JoinHostPort(tk.AgentIP, strconv.Itoa(int(tk.Ports[n].Number)))
				r.Backends = append(r.Backends, Backend{Addr: addr, TaskID: tk.ID, cookie: stickyCookie(addr)})
			}
			sort.Slice(r.Backends, func(i, j int) bool { return r.Backends[i].TaskID < r.Backends[j].TaskID })
			if servicePort > 0 {
				r.Listen = net.JoinHostPort(bind, strconv.Itoa(servicePort))
				var clash *Route
				if overTCP {
					clash = t.services[r.Listen]
				}
				if overUDP && clash == nil {
					clash = t.udp[r.Listen]
				}
				switch {
				case clash != nil:
					bad(fmt.Sprintf("HAPROXY_%d_PORT", n), strconv.Itoa(servicePort), "service port already used by "+clash.App)
					r.Listen = ""
				default:
					if overTCP {
						t.services[r.Listen] = r
					}
					if overUDP {
						t.udp[r.Listen] = r
					}
				}
			}
			for _, h := range r.VHosts {
				vhostRoutes[h] = append(vhostRoutes[h], r)
			}
			t.routes = append(t.routes, r)
		}
	}
	for h, rs := range vhostRoutes {
		vh := &vhost{paths: groupPaths(rs)}
		if strings.HasPrefix(h, "*.") {
			t.wildcards = append(t.wildcards, wildcard{suffix: h[1:], vh: vh})
		} else {
			t.vhosts[h] = vh
		}
	}
	sort.Slice(t.wildcards, func(i, j int) bool { return len(t.wildcards[i].suffix) > len(t.wildcards[j].suffix) })
	return t, errs
}

// portProtocols reads a port's protocol ("tcp", "udp", Marathon's
// "udp,tcp"; "" is tcp) as the listeners it needs.
func portProtocols(proto string) (tcp, udp bool) {
	for _, p := range strings.Split(strings.ToLower(proto), ",") {
		switch strings.TrimSpace(p) {
		case "udp":
			udp = true
		default:
			tcp = true
		}
	}
	return tcp, udp
}

func inGroup(groups, want string) bool {
	if want == "*" {
		return true
	}
	for _, g := range strings.Split(groups, ",") {
		if strings.TrimSpace(g) == want {
			return true
		}
	}
	return false
}

// groupPaths groups a vhost's routes by path, longest first, with the
// cumulative weights that split each path between its apps.
func groupPaths(rs []*Route) []*pathEntry {
	byPath := map[string]*pathEntry{}
	var out []*pathEntry
	for _, r := range rs {
		e := byPath[r.Path]
		if e == nil {
			e = &pathEntry{path: r.Path, next: new(atomic.Uint64)}
			byPath[r.Path] = e
			out = append(out, e)
		}
		e.routes = append(e.routes, r)
		e.total += uint64(r.Weight)
		e.cum = append(e.cum, e.total)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].path) > len(out[j].path) })
	return out
}
