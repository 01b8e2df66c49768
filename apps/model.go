package apps

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/keelhq/keel/api/marathon"
)

// Defaults Marathon applies to an app definition.
const (
	defaultCPUs      = 1.0
	defaultMem       = 128.0
	defaultInstances = 1
	defaultBackoff   = 1.0
	defaultFactor    = 1.15
	defaultMaxDelay  = 300.0
	defaultKillGrace = 3.0
)

// segment is one element of an app ID path, as Marathon allows it.
var segment = regexp.MustCompile(`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`)

// validationError is Marathon's 422: a list of invalid fields.
type validationError struct {
	details []marathon.ErrorDetail
}

// Error lists the invalid fields.
func (e *validationError) Error() string {
	var parts []string
	for _, d := range e.details {
		parts = append(parts, d.Path+": "+strings.Join(d.Errors, ", "))
	}
	return "apps: invalid app: " + strings.Join(parts, "; ")
}

func (e *validationError) add(path, msg string) {
	for i := range e.details {
		if e.details[i].Path == path {
			e.details[i].Errors = append(e.details[i].Errors, msg)
			return
		}
	}
	e.details = append(e.details, marathon.ErrorDetail{Path: path, Errors: []string{msg}})
}

// normalizeID returns the absolute form of an app ID ("web" -> "/web").
func normalizeID(id string) string {
	id = strings.TrimSpace(id)
	if id != "" && !strings.HasPrefix(id, "/") {
		id = "/" + id
	}
	return strings.TrimRight(id, "/")
}

// validate checks an app definition the way Marathon does and fills in
// defaults. It returns a *validationError listing every bad field.
func validate(app *marathon.App) error {
	v := &validationError{}
	for i, f := range app.Fetch {
		if strings.TrimSpace(f.URI) == "" {
			v.add(fmt.Sprintf("/fetch(%d)/uri", i), "must not be empty")
		}
	}
	for i, u := range app.URIs {
		if strings.TrimSpace(u) == "" {
			v.add(fmt.Sprintf("/uris(%d)", i), "must not be empty")
		}
	}
	app.ID = normalizeID(app.ID)
	if app.ID == "" {
		v.add("/id", "must not be empty")
	} else {
		for _, seg := range strings.Split(app.ID[1:], "/") {
			if !segment.MatchString(seg) || seg == "." || seg == ".." {
				v.add("/id", "must be a path of lowercase letters, digits, hyphens and dots, each element starting and ending with a letter or digit: got '"+app.ID+"'")
				break
			}
		}
	}
	if app.ID != "" && len(app.Dependencies) > 0 {
		deps := make([]string, 0, len(app.Dependencies))
		for i, d := range app.Dependencies {
			r := resolveID(parentOf(app.ID), d)
			switch {
			case r == "" || !validGroupID(r):
				v.add(fmt.Sprintf("/dependencies(%d)", i), fmt.Sprintf("'%s' is not a valid app or group ID", d))
			case under(app.ID, r):
				v.add(fmt.Sprintf("/dependencies(%d)", i), "an app cannot depend on itself or a group it is in")
			}
			deps = append(deps, r)
		}
		app.Dependencies = deps
	}
	hasCmd := app.Cmd != nil && strings.TrimSpace(*app.Cmd) != ""
	if !hasCmd && len(app.Args) == 0 && (app.Container == nil || app.Container.Docker == nil) {
		v.add("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")
	}
	if hasCmd && len(app.Args) > 0 {
		v.add("/", "AppDefinition must not contain both 'cmd' and 'args'.")
	}
	if app.Instances != nil && *app.Instances < 0 {
		v.add("/instances", fmt.Sprintf("got %d, expected 0 or more", *app.Instances))
	}
	for path, val := range map[string]*float64{"/cpus": app.CPUs, "/mem": app.Mem, "/disk": app.Disk} {
		if val != nil && *val < 0 {
			v.add(path, fmt.Sprintf("got %g, expected 0.0 or more", *val))
		}
	}
	if app.CPUs != nil && *app.CPUs == 0 && app.Mem != nil && *app.Mem == 0 {
		v.add("/cpus", "an app needs some cpus or mem")
	}
	seen := map[int]bool{}
	for i, pd := range app.PortDefinitions {
		path := fmt.Sprintf("/portDefinitions(%d)", i)
		if pd.Port < 0 || pd.Port > 65535 {
			v.add(path+"/port", fmt.Sprintf("got %d, expected 0 to 65535", pd.Port))
		}
		if pd.Port != 0 {
			if seen[pd.Port] {
				v.add(path+"/port", fmt.Sprintf("port %d is used more than once", pd.Port))
			}
			seen[pd.Port] = true
		}
		switch pd.Protocol {
		case "", "tcp", "udp", "udp,tcp", "tcp,udp":
		default:
			v.add(path+"/protocol", "must be one of tcp, udp, udp,tcp")
		}
	}
	if app.RequirePorts {
		for i, pd := range app.PortDefinitions {
			if pd.Port == 0 {
				v.add(fmt.Sprintf("/portDefinitions(%d)/port", i), "requirePorts needs explicit ports")
			}
		}
	}
	for i, h := range app.HealthChecks {
		path := fmt.Sprintf("/healthChecks(%d)", i)
		switch strings.ToUpper(h.Protocol) {
		case "", "HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS", "TCP", "MESOS_TCP":
			if h.Port == nil {
				idx := 0
				if h.PortIndex != nil {
					idx = *h.PortIndex
				}
				if n := len(appPorts(app)); idx < 0 || idx >= n {
					v.add(path+"/portIndex", fmt.Sprintf("port index %d is not one of the app's %d ports", idx, n))
				}
			}
		case "COMMAND":
			if h.Command == nil || strings.TrimSpace(h.Command.Value) == "" {
				v.add(path+"/command", "a COMMAND health check needs a command")
			}
		default:
			v.add(path+"/protocol", "must be one of HTTP, HTTPS, TCP, COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP")
		}
		for field, val := range map[string]int{"gracePeriodSeconds": h.GracePeriodSeconds, "intervalSeconds": h.IntervalSeconds,
			"timeoutSeconds": h.TimeoutSeconds, "maxConsecutiveFailures": h.MaxConsecutiveFailures, "delaySeconds": h.DelaySeconds} {
			if val < 0 {
				v.add(path+"/"+field, "must be 0 or more")
			}
		}
	}
	validateContainer(app, v)
	switch app.KillSelection {
	case "", "YOUNGEST_FIRST", "OLDEST_FIRST":
	default:
		v.add("/killSelection", "must be one of YOUNGEST_FIRST, OLDEST_FIRST")
	}
	validateUnreachable(app.UnreachableStrategy, v)
	validateReadiness(app, v)
	for i, c := range app.Constraints {
		if _, err := parseConstraint(c); err != nil {
			v.add(fmt.Sprintf("/constraints(%d)", i), err.Error())
		}
	}
	if len(v.details) > 0 {
		return v
	}
	defaults(app)
	return nil
}

func defaults(app *marathon.App) {
	setF := func(p **float64, v float64) {
		if *p == nil {
			*p = &v
		}
	}
	if app.Instances == nil {
		n := defaultInstances
		app.Instances = &n
	}
	setF(&app.CPUs, defaultCPUs)
	setF(&app.Mem, defaultMem)
	setF(&app.Disk, 0)
	setF(&app.BackoffSeconds, defaultBackoff)
	setF(&app.BackoffFactor, defaultFactor)
	setF(&app.MaxLaunchDelaySeconds, defaultMaxDelay)
	setF(&app.TaskKillGracePeriod, defaultKillGrace)
	for i := range app.PortDefinitions {
		if app.PortDefinitions[i].Protocol == "" {
			app.PortDefinitions[i].Protocol = "tcp"
		}
	}
	for i, pms := 0, portMappings(app); i < len(pms); i++ {
		if pms[i].Protocol == "" {
			pms[i].Protocol = "tcp"
		}
	}
	if app.KillSelection == "" {
		app.KillSelection = "YOUNGEST_FIRST"
	}
	defaultUnreachable(app)
	defaultReadiness(app)
}

// decodeApp decodes a request body into an app, turning JSON type errors
// into field errors.
func decodeApp(body []byte, app *marathon.App) error {
	if err := json.Unmarshal(body, app); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			v := &validationError{}
			v.add("/"+strings.ReplaceAll(te.Field, ".", "/"), fmt.Sprintf("expected %s, got %s", te.Type, te.Value))
			return v
		}
		v := &validationError{}
		v.add("/", "Invalid JSON: "+err.Error())
		return v
	}
	return nil
}

// merge applies the fields present in upd (a PUT body) to cur, Marathon's
// AppUpdate semantics. It reports whether anything but instances changed.
func merge(cur marathon.App, upd marathon.App) (marathon.App, bool) {
	before, _ := json.Marshal(specOf(cur))
	out := cur
	if upd.Cmd != nil {
		out.Cmd = upd.Cmd
		out.Args = nil
	}
	if upd.Args != nil {
		out.Args = upd.Args
		out.Cmd = nil
	}
	if upd.Instances != nil {
		out.Instances = upd.Instances
	}
	for _, f := range []struct{ dst, src **float64 }{{&out.CPUs, &upd.CPUs}, {&out.Mem, &upd.Mem}, {&out.Disk, &upd.Disk},
		{&out.BackoffSeconds, &upd.BackoffSeconds}, {&out.BackoffFactor, &upd.BackoffFactor},
		{&out.MaxLaunchDelaySeconds, &upd.MaxLaunchDelaySeconds}, {&out.TaskKillGracePeriod, &upd.TaskKillGracePeriod}} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
	if upd.Env != nil {
		out.Env = upd.Env
	}
	if upd.Labels != nil {
		out.Labels = upd.Labels
	}
	if upd.PortDefinitions != nil {
		// Service ports survive an update that leaves them at 0.
		pds := append([]marathon.PortDefinition(nil), upd.PortDefinitions...)
		for i := range pds {
			if pds[i].Port == 0 && i < len(cur.PortDefinitions) {
				pds[i].Port = cur.PortDefinitions[i].Port
			}
		}
		out.PortDefinitions = pds
	}
	if upd.Constraints != nil {
		out.Constraints = upd.Constraints
	}
	if upd.Dependencies != nil {
		out.Dependencies = upd.Dependencies
	}
	if upd.Container != nil {
		out.Container = upd.Container
	}
	if upd.Networks != nil {
		out.Networks = upd.Networks
	}
	if out.Container != nil && (upd.Container != nil || upd.Networks != nil) {
		// Mapping service ports survive an update too.
		c := *out.Container
		c.PortMappings = append([]marathon.PortMapping(nil), c.PortMappings...)
		if c.Docker != nil {
			d := *c.Docker
			d.PortMappings = append([]marathon.PortMapping(nil), d.PortMappings...)
			c.Docker = &d
		}
		out.Container = &c
		keepServicePorts(&cur, &out)
	}
	if upd.HealthChecks != nil {
		out.HealthChecks = upd.HealthChecks
	}
	if upd.User != "" {
		out.User = upd.User
	}
	if upd.KillSelection != "" {
		out.KillSelection = upd.KillSelection
	}
	if upd.UnreachableStrategy != nil {
		out.UnreachableStrategy = upd.UnreachableStrategy
	}
	if upd.ReadinessChecks != nil {
		out.ReadinessChecks = upd.ReadinessChecks
	}
	out.RequirePorts = upd.RequirePorts || (cur.RequirePorts && upd.PortDefinitions == nil)
	after, _ := json.Marshal(specOf(out))
	return out, string(before) != string(after)
}

// specOf is the part of an app whose change means new tasks (everything
// but the instance count and read-only fields).
func specOf(a marathon.App) marathon.App {
	a.Instances = nil
	a.Version, a.VersionInfo = "", nil
	a.Tasks, a.Deployments, a.LastTaskFailure = nil, nil, nil
	a.TasksStaged, a.TasksRunning, a.TasksHealthy, a.TasksUnhealthy = 0, 0, 0, 0
	return a
}

// taskName is the Mesos task name of an app: path elements reversed and
// joined by dots ("/prod/web" -> "web.prod"), as Marathon names tasks.
func taskName(appID string) string {
	parts := strings.Split(strings.Trim(appID, "/"), "/")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ".")
}

// taskIDPrefix is the app part of its task IDs ("/prod/web" -> "prod_web").
func taskIDPrefix(appID string) string {
	return strings.ReplaceAll(strings.Trim(appID, "/"), "/", "_")
}

// appIDOfTask recovers the app ID from a task ID made by newTaskID.
func appIDOfTask(taskID string) (string, bool) {
	i := strings.LastIndexByte(taskID, '.')
	if i <= 0 {
		return "", false
	}
	return "/" + strings.ReplaceAll(taskID[:i], "_", "/"), true
}
