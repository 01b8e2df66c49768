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

// need is an app that wants Count more instances.
type need struct {
	App   *marathon.App
	Count int
}

// launch is one task to start.
type launch struct {
	AppID     string
	Task      mesos.TaskInfo
	HostPorts []int
}

// place fits as many of the needed instances as the offer holds, in the
// order of needs. It is pure: newID makes task IDs.
func place(offer mesos.Offer, needs []need, newID func(appID string) string) []launch {
	free := offer.Resources.Normalize()
	var out []launch
	for _, n := range needs {
		for i := 0; i < n.Count; i++ {
			l, ok := fit(offer, free, n.App, newID(n.App.ID))
			if !ok {
				break
			}
			free = free.Minus(l.Task.Resources)
			out = append(out, l)
		}
	}
	return out
}

// fit builds the task of app on the offer's free resources, if it fits.
func fit(offer mesos.Offer, free mesos.Resources, app *marathon.App, taskID string) (launch, bool) {
	res := mesos.Resources{mesos.ScalarResource("cpus", *app.CPUs), mesos.ScalarResource("mem", *app.Mem)}
	if *app.Disk > 0 {
		res = append(res, mesos.ScalarResource("disk", *app.Disk))
	}
	var hostPorts []int
	if len(app.PortDefinitions) > 0 {
		avail := free.Ranges("ports")
		taken := map[int]bool{}
		for _, pd := range app.PortDefinitions {
			p := 0
			if app.RequirePorts {
				if inRanges(avail, pd.Port) {
					p = pd.Port
				}
			} else {
				p = firstFree(avail, taken)
			}
			if p == 0 {
				return launch{}, false
			}
			taken[p] = true
			hostPorts = append(hostPorts, p)
			res = append(res, mesos.RangesResource("ports", mesos.Range{Begin: uint64(p), End: uint64(p)}))
		}
	}
	res = res.Normalize()
	if !free.Contains(res) {
		return launch{}, false
	}
	return launch{AppID: app.ID, HostPorts: hostPorts, Task: taskInfo(app, offer, taskID, res, hostPorts)}, true
}

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
	for i, p := range hostPorts {
		ps := strconv.Itoa(p)
		ports = append(ports, ps)
		env[fmt.Sprintf("PORT%d", i)] = ps
		if name := app.PortDefinitions[i].Name; name != "" {
			env["PORT_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = ps
		}
		if sp := app.PortDefinitions[i].Port; sp != 0 {
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
	if app.Cmd != nil {
		cmd.Value = *app.Cmd
	} else if len(app.Args) > 0 {
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
			pd := app.PortDefinitions[i]
			proto := pd.Protocol
			if proto == "" || strings.Contains(proto, ",") {
				proto = "tcp"
			}
			port := mesos.Port{Number: uint32(p), Name: pd.Name, Protocol: proto}
			if pd.Port != 0 {
				port.Labels = &mesos.Labels{Labels: []mesos.Label{{Key: mesos.LabelServicePort, Value: strconv.Itoa(pd.Port)}}}
			}
			disc.Ports.Ports = append(disc.Ports.Ports, port)
		}
	}
	grace := time.Duration(*app.TaskKillGracePeriod * float64(time.Second))
	return mesos.TaskInfo{
		Name: taskName(app.ID), TaskID: mesos.ID{Value: taskID}, AgentID: offer.AgentID, Resources: res,
		Command: cmd, Labels: labels, Discovery: disc, HealthCheck: healthCheck(app, hostPorts),
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
