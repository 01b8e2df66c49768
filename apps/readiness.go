package apps

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
)

// Readiness checks, as Marathon runs them: the framework itself (not the
// agent) GETs path on the task's host and the host port named portName,
// every intervalSeconds, each attempt bounded by timeoutSeconds. A task
// of the app's current version counts as ready for a deployment (and for
// apps depending on it) only once every check has answered with one of
// httpStatusCodesForReady; from then on it is not checked again. Results
// show in GET /v2/deployments as readinessCheckResults. HTTPS checks do
// not verify the task's certificate (tasks rarely have one a CA signed),
// as Marathon's checks do not.

// Marathon's readiness check defaults.
const (
	defaultReadinessName     = "readinessCheck"
	defaultReadinessPortName = "http-api"
	defaultReadinessInterval = 30
	defaultReadinessTimeout  = 10
	// readinessTick is how often due checks are looked for.
	readinessTick = time.Second
	// maxReadinessBody bounds a preserved response body.
	maxReadinessBody = 4 << 10
	// maxProbes bounds the checks in flight at once.
	maxProbes = 16
)

var portNameRE = regexp.MustCompile(`^[a-z][-a-z0-9]*$`)

// readinessState is one check of one task.
type readinessState struct {
	result marathon.ReadinessCheckResult
	next   time.Time // when the check is due again
}

// validateReadiness checks readinessChecks as Marathon does.
func validateReadiness(app *marathon.App, v *validationError) {
	names := map[string]bool{}
	for _, p := range appPorts(app) {
		if p.Name != "" {
			names[p.Name] = true
		}
	}
	seen := map[string]bool{}
	for i, rc := range app.ReadinessChecks {
		path := fmt.Sprintf("/readinessChecks(%d)", i)
		name := rc.Name
		if name == "" {
			name = defaultReadinessName
		}
		if seen[name] {
			v.add(path+"/name", fmt.Sprintf("name %q is used more than once", name))
		}
		seen[name] = true
		switch rc.Protocol {
		case "", "HTTP", "HTTPS":
		default:
			v.add(path+"/protocol", "must be one of HTTP, HTTPS")
		}
		if rc.Path != "" && !strings.HasPrefix(rc.Path, "/") {
			v.add(path+"/path", "must start with /")
		}
		port := rc.PortName
		if port == "" {
			port = defaultReadinessPortName
		}
		if !portNameRE.MatchString(port) {
			v.add(path+"/portName", "must match "+portNameRE.String())
		} else if !names[port] {
			v.add(path+"/portName", fmt.Sprintf("no port of the app is named %q", port))
		}
		interval, timeout := defaultReadinessInterval, defaultReadinessTimeout
		if rc.IntervalSeconds != nil {
			interval = *rc.IntervalSeconds
		}
		if rc.TimeoutSeconds != nil {
			timeout = *rc.TimeoutSeconds
		}
		if interval < 1 {
			v.add(path+"/intervalSeconds", fmt.Sprintf("got %d, expected 1 or more", interval))
		}
		switch {
		case timeout < 1:
			v.add(path+"/timeoutSeconds", fmt.Sprintf("got %d, expected 1 or more", timeout))
		case timeout >= interval && interval >= 1:
			v.add(path+"/timeoutSeconds", fmt.Sprintf("got %d, expected less than intervalSeconds (%d)", timeout, interval))
		}
		codes := map[int]bool{}
		for j, c := range rc.HTTPStatusCodesForReady {
			if c < 100 || c > 999 {
				v.add(fmt.Sprintf("%s/httpStatusCodesForReady(%d)", path, j), fmt.Sprintf("got %d, expected 100 to 999", c))
			}
			if codes[c] {
				v.add(fmt.Sprintf("%s/httpStatusCodesForReady(%d)", path, j), fmt.Sprintf("status %d is listed more than once", c))
			}
			codes[c] = true
		}
	}
}

// defaultReadiness fills in Marathon's defaults.
func defaultReadiness(app *marathon.App) {
	for i := range app.ReadinessChecks {
		rc := &app.ReadinessChecks[i]
		if rc.Name == "" {
			rc.Name = defaultReadinessName
		}
		if rc.Protocol == "" {
			rc.Protocol = "HTTP"
		}
		if rc.Path == "" {
			rc.Path = "/"
		}
		if rc.PortName == "" {
			rc.PortName = defaultReadinessPortName
		}
		if rc.IntervalSeconds == nil {
			n := defaultReadinessInterval
			rc.IntervalSeconds = &n
		}
		if rc.TimeoutSeconds == nil {
			n := defaultReadinessTimeout
			rc.TimeoutSeconds = &n
		}
		if len(rc.HTTPStatusCodesForReady) == 0 {
			rc.HTTPStatusCodesForReady = []int{http.StatusOK}
		}
	}
}

// readinessProbe is one check to run now.
type readinessProbe struct {
	appID, taskID string
	check         marathon.ReadinessCheck
	url           string
}

// dueProbes lists the readiness checks due at now and marks them not due
// again before their interval: running tasks of an app's current version
// that are not ready yet. Caller holds mu.
func (f *Framework) dueProbes(now time.Time) []readinessProbe {
	var out []readinessProbe
	for appID, a := range f.apps {
		if len(a.def.ReadinessChecks) == 0 {
			continue
		}
		cur := configVersion(a.def)
		ports := appPorts(&a.def)
		for _, t := range a.tasks {
			if t.ready || !t.active() || t.state != mesos.TaskRunning || t.version != cur || t.host == "" {
				continue
			}
			if t.checks == nil {
				t.checks = map[string]*readinessState{}
			}
			for _, rc := range a.def.ReadinessChecks {
				st := t.checks[rc.Name]
				if st == nil {
					st = &readinessState{result: marathon.ReadinessCheckResult{Name: rc.Name, TaskID: t.id}}
					t.checks[rc.Name] = st
				}
				if st.result.Ready || now.Before(st.next) {
					continue
				}
				st.next = now.Add(time.Duration(*rc.IntervalSeconds) * time.Second)
				port := 0
				for i, p := range ports {
					if p.Name == rc.PortName && i < len(t.ports) {
						port = t.ports[i]
					}
				}
				if port == 0 {
					continue // validation makes this the task of an older definition
				}
				scheme := "http"
				if rc.Protocol == "HTTPS" {
					scheme = "https"
				}
				out = append(out, readinessProbe{appID: appID, taskID: t.id, check: rc,
					url: scheme + "://" + net.JoinHostPort(t.host, strconv.Itoa(port)) + rc.Path})
			}
		}
	}
	return out
}

// newProbeClient is the HTTP client of readiness checks: no proxy, no
// kept-alive connections to tasks that come and go, and no certificate
// verification (see above). Each check has its own deadline.
func newProbeClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as Marathon: tasks' certificates are not CA-signed
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// runProbe runs one check: ready, and the response when there was one.
func (f *Framework) runProbe(ctx context.Context, p readinessProbe) (bool, *marathon.ReadinessResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(*p.check.TimeoutSeconds)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return false, nil, fmt.Errorf("apps: readiness check %s: %w", p.url, err)
	}
	resp, err := f.probe.Do(req)
	if err != nil {
		return false, nil, fmt.Errorf("apps: readiness check: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxReadinessBody))
	ready := false
	for _, c := range p.check.HTTPStatusCodesForReady {
		ready = ready || c == resp.StatusCode
	}
	return ready, &marathon.ReadinessResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(body)}, nil
}

// probeReadiness runs every due readiness check (in parallel, bounded)
// and applies the results; a task that became ready moves its rolling
// upgrade on.
func (f *Framework) probeReadiness(ctx context.Context) {
	f.mu.Lock()
	probes := f.dueProbes(f.cfg.Clock())
	f.mu.Unlock()
	if len(probes) == 0 {
		return
	}
	type outcome struct {
		ready bool
		resp  *marathon.ReadinessResponse
	}
	results := make([]outcome, len(probes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxProbes)
	for i, p := range probes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ready, resp, err := f.runProbe(ctx, p)
			switch {
			case err != nil:
				f.metrics.readiness.WithLabelValues("error").Inc()
				f.log.Debug("readiness check failed", "app", p.appID, "task_id", p.taskID, "check", p.check.Name, "err", err)
			case ready:
				f.metrics.readiness.WithLabelValues("ready").Inc()
			default:
				f.metrics.readiness.WithLabelValues("not_ready").Inc()
			}
			results[i] = outcome{ready, resp}
		}()
	}
	wg.Wait()
	became := false
	f.mu.Lock()
	for i, p := range probes {
		a := f.apps[p.appID]
		if a == nil {
			continue
		}
		t := a.tasks[p.taskID]
		if t == nil || t.checks[p.check.Name] == nil {
			continue
		}
		st := t.checks[p.check.Name]
		st.result.Ready = results[i].ready
		if p.check.PreserveLastResponse {
			st.result.LastResponse = results[i].resp
		}
		if t.ready || !results[i].ready {
			continue
		}
		all := true
		for _, rc := range a.def.ReadinessChecks {
			all = all && t.checks[rc.Name] != nil && t.checks[rc.Name].result.Ready
		}
		if all {
			t.ready, became = true, true
			f.log.Info("task ready", "app", p.appID, "task_id", p.taskID)
		}
	}
	f.mu.Unlock()
	if became {
		f.rollStep(ctx)
		f.scaleDown(ctx)
	}
}

// readinessLoop runs due readiness checks until ctx is done.
func (f *Framework) readinessLoop(ctx context.Context) {
	t := time.NewTicker(readinessTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.probeReadiness(ctx)
	}
}

// readinessResults lists the readiness results of an app's tasks of its
// current version, by task ID then check name. Caller holds mu.
func (a *appState) readinessResults() []marathon.ReadinessCheckResult {
	out := []marathon.ReadinessCheckResult{}
	cur := configVersion(a.def)
	for _, t := range a.tasks {
		if t.version != cur {
			continue
		}
		for _, rc := range a.def.ReadinessChecks {
			if st := t.checks[rc.Name]; st != nil {
				out = append(out, st.result)
			}
		}
	}
	return out
}
