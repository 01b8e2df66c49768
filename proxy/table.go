package proxy

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

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
	services   map[string]*Route // by listener address "ip:port"
	routes     []*Route          // every route, for the admin API
}

type vhost struct {
	routes []*Route // longest path first
}

type wildcard struct {
	suffix string // ".example.com"
	vh     *vhost
}

// Route is where one app port's traffic goes.
type Route struct {
	App       string            `json:"app"`
	PortIndex int               `json:"port_index"`
	Mode      string            `json:"mode"`
	VHosts    []string          `json:"vhosts,omitempty"`
	Path      string            `json:"path,omitempty"`
	Listen    string            `json:"listen,omitempty"` // service port listener "ip:port"
	Balance   string            `json:"balance"`
	Backends  []Backend         `json:"backends"`
	Labels    map[string]string `json:"labels,omitempty"`
	next      *atomic.Uint64
}

// Backend is one task endpoint.
type Backend struct {
	Addr   string `json:"addr"`
	TaskID string `json:"task_id"`
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

// match returns the route with the longest path prefix of path.
func (v *vhost) match(path []byte) *Route {
	for _, r := range v.routes {
		if r.Path == "" || hasPrefix(path, r.Path) {
			return r
		}
	}
	return nil
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

var balances = map[string]bool{"roundrobin": true, "leastconn": true, "random": true, "source": true}

// BuildTable turns a snapshot into a routing table. It is pure. Bad labels
// are reported and skip only the port they are on.
func BuildTable(snap *snapshot.Snapshot, opts TableOptions) (*Table, []LabelError) {
	t := &Table{Generation: snap.Generation, vhosts: map[string]*vhost{}, services: map[string]*Route{}}
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
			r := &Route{App: id, PortIndex: n, Mode: "tcp", Balance: "roundrobin", next: new(atomic.Uint64), Labels: labels}
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
			for _, tk := range a.tasks {
				if !tk.Routable(opts.HealthyOnly) || n >= len(tk.Ports) || tk.AgentIP == "" {
					continue
				}
				r.Backends = append(r.Backends, Backend{Addr: net.JoinHostPort(tk.AgentIP, strconv.Itoa(int(tk.Ports[n].Number))), TaskID: tk.ID})
			}
			sort.Slice(r.Backends, func(i, j int) bool { return r.Backends[i].TaskID < r.Backends[j].TaskID })
			if servicePort > 0 {
				r.Listen = net.JoinHostPort(bind, strconv.Itoa(servicePort))
				if other, dup := t.services[r.Listen]; dup {
					bad(fmt.Sprintf("HAPROXY_%d_PORT", n), strconv.Itoa(servicePort), "service port already used by "+other.App)
					r.Listen = ""
				} else {
					t.services[r.Listen] = r
				}
			}
			for _, h := range r.VHosts {
				vhostRoutes[h] = append(vhostRoutes[h], r)
			}
			t.routes = append(t.routes, r)
		}
	}
	for h, rs := range vhostRoutes {
		sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Path) > len(rs[j].Path) })
		vh := &vhost{routes: rs}
		if strings.HasPrefix(h, "*.") {
			t.wildcards = append(t.wildcards, wildcard{suffix: h[1:], vh: vh})
		} else {
			t.vhosts[h] = vh
		}
	}
	sort.Slice(t.wildcards, func(i, j int) bool { return len(t.wildcards[i].suffix) > len(t.wildcards[j].suffix) })
	return t, errs
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
