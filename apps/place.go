package apps

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// need is an app that wants Count more instances. Placed are the places
// of its live tasks, which its constraints are checked against.
type need struct {
	App    *marathon.App
	Count  int
	Placed []agentPlace
}

// launch is one task to start.
type launch struct {
	AppID     string
	Task      mesos.TaskInfo
	HostPorts []int
	// Place is where it runs, kept with the task for later constraint checks.
	Place agentPlace
}

// Reasons an offer is not used for an app, in the order they are checked
// (Marathon's names, as /v2/queue reports them).
const (
	reasonConstraint = "UnfulfilledConstraint"
	reasonCPUs       = "InsufficientCpus"
	reasonMem        = "InsufficientMemory"
	reasonDisk       = "InsufficientDisk"
	reasonPorts      = "InsufficientPorts"
)

// rejectReasons is the order of the checks: an offer rejected for a
// reason has passed every check before it.
var rejectReasons = [...]string{reasonConstraint, reasonCPUs, reasonMem, reasonDisk, reasonPorts}

// offerResult is what one offer did for one app that needed instances:
// how many it placed and, when none, why.
type offerResult struct {
	AppID  string
	Placed int
	Reason string
}

// place fits as many of the needed instances as the offer holds, in the
// order of needs, honouring each app's constraints against its live tasks
// and the ones placed before on this offer. It is pure: newID makes task
// IDs. It also says, per need, whether the offer was used and why not.
func place(offer mesos.Offer, needs []need, newID func(appID string) string) ([]launch, []offerResult) {
	free := offer.Resources.Normalize()
	at := offerPlace(offer)
	var out []launch
	var results []offerResult
	for _, n := range needs {
		cs := parseConstraints(n.App.Constraints)
		placed := append([]agentPlace(nil), n.Placed...)
		res := offerResult{AppID: n.App.ID}
		for i := 0; i < n.Count; i++ {
			if !meetsAll(cs, at, placed) {
				res.Reason = reasonConstraint
				break
			}
			l, reason := fit(offer, free, n.App, newID(n.App.ID))
			if reason != "" {
				res.Reason = reason
				break
			}
			l.Place = at
			placed = append(placed, at)
			free = free.Minus(l.Task.Resources)
			out = append(out, l)
			res.Placed++
		}
		if res.Placed > 0 {
			res.Reason = ""
		}
		results = append(results, res)
	}
	return out, results
}

// fit builds the task of app on the offer's free resources, if it fits;
// otherwise it returns the first resource that is short.
func fit(offer mesos.Offer, free mesos.Resources, app *marathon.App, taskID string) (launch, string) {
	switch {
	case short(free.Scalar("cpus"), *app.CPUs):
		return launch{}, reasonCPUs
	case short(free.Scalar("mem"), *app.Mem):
		return launch{}, reasonMem
	case short(free.Scalar("disk"), *app.Disk):
		return launch{}, reasonDisk
	}
	res := mesos.Resources{mesos.ScalarResource("cpus", *app.CPUs), mesos.ScalarResource("mem", *app.Mem)}
	if *app.Disk > 0 {
		res = append(res, mesos.ScalarResource("disk", *app.Disk))
	}
	var hostPorts []int
	if ports := appPorts(app); len(ports) > 0 {
		avail := free.Ranges("ports")
		taken := map[int]bool{}
		for _, ap := range ports {
			p := 0
			if ap.Host != 0 {
				if inRanges(avail, ap.Host) && !taken[ap.Host] {
					p = ap.Host
				}
			} else {
				p = firstFree(avail, taken)
			}
			if p == 0 {
				return launch{}, reasonPorts
			}
			taken[p] = true
			hostPorts = append(hostPorts, p)
			res = append(res, mesos.RangesResource("ports", mesos.Range{Begin: uint64(p), End: uint64(p)}))
		}
	}
	res = res.Normalize()
	if !free.Contains(res) {
		// Scalars were checked above; what is left is a role or port split.
		return launch{}, reasonPorts
	}
	return launch{AppID: app.ID, HostPorts: hostPorts, Task: taskInfo(app, offer, taskID, res, hostPorts)}, ""
}

// short reports whether have is less than want, ignoring float noise.
func short(have, want float64) bool { return have < want-1e-9 }

func inRanges(rs []mesos.Range, p int) bool {
	for _, r := range rs {
		if uint64(p) >= r.Begin && uint64(p) <= r.End {
			return true
		}
	}
	return false
}

func firstFree(rs []mesos.Range, taken map[int]bool) int {
	for _, r := range rs {
		for p := r.Begin; p <= r.End; p++ {
			if !taken[int(p)] {
				return int(p)
			}
		}
	}
	return 0
}

// taskInfo is the Mesos task of one instance of app, Marathon style: its
// name, environment (PORT0.., HOST, MARATHON_APP_ID, ...), labels plus the
// app ID, and DiscoveryInfo ports labelled with their service ports.
func taskInfo(app *marathon.App, offer mesos.Offer, taskID string, res mesos.Resources, hostPorts []int) mesos.TaskInfo {
	env := map[string]string{}
	for k, v := range app.Env {
		env[k] = v
	}
	var ports []string
	aps := appPorts(app)
	for i, p := range hostPorts {
		ps := strconv.Itoa(p)
		ports = append(ports, ps)
		env[fmt.Sprintf("PORT%d", i)] = ps
		if name := aps[i].Name; name != "" {
			env["PORT_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = ps
		}
		// PORT_{declared port}: the container port of a mapping, the
		// service port of a port definition (as Marathon).
		if aps[i].Mapped {
			if aps[i].Container != 0 {
				env[fmt.Sprintf("PORT_%d", aps[i].Container)] = ps
			}
		} else if sp := aps[i].Service; sp != 0 {
			env[fmt.Sprintf("PORT_%d", sp)] = ps
		}
	}
	if len(ports) > 0 {
		env["PORT"] = ports[0]
		env["PORTS"] = strings.Join(ports, ",")
	}
	env["HOST"] = offer.Hostname
	env["MESOS_TASK_ID"] = taskID
	env["MARATHON_APP_ID"] = app.ID
	env["MARATHON_APP_VERSION"] = app.Version
	var keys []string
	for k := range app.Labels {
		keys = append(keys, k)
	}
	sortStrings(keys)
	env["MARATHON_APP_LABELS"] = strings.Join(keys, " ")
	var vars []mesos.EnvVar
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sortStrings(names)
	for _, k := range names {
		vars = append(vars, mesos.EnvVar{Name: k, Value: env[k]})
	}

	cmd := &mesos.CommandInfo{Environment: &mesos.Environment{Variables: vars}, User: app.User}
	cmd.URIs = fetchURIs(app)
	docker := isDocker(app)
	switch {
	case app.Cmd != nil:
		cmd.Value = *app.Cmd
	case docker:
		// The image's entrypoint runs, with the args as its arguments.
		shell := false
		cmd.Shell, cmd.Arguments = &shell, app.Args
	case len(app.Args) > 0:
		shell := false
		cmd.Shell, cmd.Value, cmd.Arguments = &shell, app.Args[0], app.Args
	}
	labels := &mesos.Labels{}
	for _, k := range keys {
		labels.Labels = append(labels.Labels, mesos.Label{Key: k, Value: app.Labels[k]})
	}
	labels.Labels = append(labels.Labels, mesos.Label{Key: mesos.LabelAppID, Value: app.ID})
	disc := &mesos.DiscoveryInfo{Visibility: "FRAMEWORK", Name: taskName(app.ID), Version: app.Version}
	if len(hostPorts) > 0 {
		disc.Ports = &mesos.Ports{}
		for i, p := range hostPorts {
			ap := aps[i]
			proto := ap.Protocol
			if proto == "" || strings.Contains(proto, ",") {
				proto = "tcp"
			}
			port := mesos.Port{Number: uint32(p), Name: ap.Name, Protocol: proto}
			if ap.Service != 0 {
				port.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: mesos.LabelServicePort, Value: strconv.Itoa(ap.Service)}}}
			}
			disc.Ports.Ports = append(disc.Ports.Ports, port)
		}
	}
	grace := time.Duration(*app.TaskKillGracePeriod * float64(time.Second))
	return mesos.TaskInfo{
		Name: taskName(app.ID), TaskID: mesos.ID{Value: taskID}, AgentID: offer.AgentID, Resources: res,
		Command: cmd, Labels: labels, Discovery: disc, HealthCheck: healthCheck(app, hostPorts),
		Container:  containerInfo(app, hostPorts),
		KillPolicy: &mesos.KillPolicy{GracePeriod: &mesos.DurationInfo{Nanoseconds: int64(grace)}},
	}
}

// Marathon's health check defaults.
const (
	defaultHCGrace    = 300
	defaultHCInterval = 60
	defaultHCTimeout  = 20
	defaultHCFailures = 3
)

// healthCheck turns the app's first Marathon health check into a
// Mesos-native one run by the agent (Keel runs every check on the agent,
// MESOS_ or not). Validation has made sure its port resolves.
func healthCheck(app *marathon.App, hostPorts []int) *mesos.HealthCheck {
	if len(app.HealthChecks) == 0 {
		return nil
	}
	h := app.HealthChecks[0]
	or := func(v, def int) float64 {
		if v <= 0 {
			return float64(def)
		}
		return float64(v)
	}
	hc := &mesos.HealthCheck{GracePeriodSeconds: or(h.GracePeriodSeconds, defaultHCGrace),
		IntervalSeconds: or(h.IntervalSeconds, defaultHCInterval), TimeoutSeconds: or(h.TimeoutSeconds, defaultHCTimeout),
		ConsecutiveFailures: uint32(or(h.MaxConsecutiveFailures, defaultHCFailures)), DelaySeconds: float64(h.DelaySeconds)}
	port := 0
	if h.Port != nil {
		port = *h.Port
	} else {
		idx := 0
		if h.PortIndex != nil {
			idx = *h.PortIndex
		}
		if idx < len(hostPorts) {
			port = hostPorts[idx]
		}
	}
	switch strings.ToUpper(h.Protocol) {
	case "", "HTTP", "MESOS_HTTP", "HTTPS", "MESOS_HTTPS":
		scheme := "http"
		if strings.HasSuffix(strings.ToUpper(h.Protocol), "HTTPS") {
			scheme = "https"
		}
		path := h.Path
		if path == "" {
			path = "/"
		}
		hc.Type, hc.HTTP = "HTTP", &mesos.HTTPCheck{Scheme: scheme, Port: uint32(port), Path: path}
	case "TCP", "MESOS_TCP":
		hc.Type, hc.TCP = "TCP", &mesos.TCPCheck{Port: uint32(port)}
	case "COMMAND":
		hc.Type = "COMMAND"
		if h.Command != nil {
			hc.Command = &mesos.CommandInfo{Value: h.Command.Value}
		}
	}
	return hc
}

func sortStrings(s []string) { sort.Strings(s) }

// fetchURIs turns an app's fetch list (and the older uris) into the URIs
// the agent downloads into the sandbox before the task starts; archives
// are extracted unless a fetch entry says extract: false (Marathon's
// default).
func fetchURIs(app *marathon.App) []mesos.URI {
	var out []mesos.URI
	for _, u := range app.URIs {
		out = append(out, mesos.URI{Value: u})
	}
	for _, f := range app.Fetch {
		out = append(out, mesos.URI{Value: f.URI, Executable: f.Executable, Extract: f.Extract, Cache: f.Cache, OutputFile: f.OutputFile})
	}
	return out
}
