// Command marathon-client drives an app through its life using only
// Marathon's documented v2 REST API: its own JSON types and net/http,
// nothing of Keel. While it reads the event stream (/v2/events) it
// deploys an app, scales it 1 -> 3 -> 1, changes its command (a rolling
// upgrade) and deletes it, printing every event it sees in order. Any
// Marathon should run it; CI runs it against keel dev.
//
//	go run ./examples/marathon-client --marathon http://127.0.0.1:8080
//
// It exits 0 after "done", or 1 with one line saying what went wrong.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// The wire types this client needs (field names as Marathon documents them).
type app struct {
	ID          string            `json:"id,omitempty"`
	Cmd         string            `json:"cmd,omitempty"`
	Instances   *int              `json:"instances,omitempty"`
	CPUs        float64           `json:"cpus,omitempty"`
	Mem         float64           `json:"mem,omitempty"`
	Version     string            `json:"version,omitempty"`
	VersionInfo *versionInfo      `json:"versionInfo,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`

	TasksRunning int          `json:"tasksRunning,omitempty"`
	Deployments  []deployment `json:"deployments,omitempty"`
	Tasks        []task       `json:"tasks,omitempty"`
}

type versionInfo struct {
	LastConfigChangeAt string `json:"lastConfigChangeAt"`
}

type deployment struct {
	ID string `json:"id"`
}

type task struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Version string `json:"version"`
}

type appResponse struct {
	App app `json:"app"`
}

type deploymentResult struct {
	Version      string `json:"version"`
	DeploymentID string `json:"deploymentId"`
}

// event is one Server-Sent Event of /v2/events.
type event struct {
	Type string
	Data map[string]any
}

func main() {
	base := flag.String("marathon", "http://127.0.0.1:8080", "Marathon base URL")
	id := flag.String("app", "/marathon-client-example", "ID of the app to create (deleted at the end)")
	cmd := flag.String("cmd", "sleep 3600", "command of the app (the upgrade appends a comment to it)")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up after this long")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c := &client{base: strings.TrimRight(*base, "/"), hc: &http.Client{}}
	if err := run(ctx, c, *id, *cmd); err != nil {
		fmt.Fprintln(os.Stderr, "marathon-client:", err)
		os.Exit(1)
	}
	fmt.Println("done")
}

func run(ctx context.Context, c *client, id, cmd string) error {
	// The stream first, so every event of what follows is seen.
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	w := newWatcher()
	go func() { w.fail(c.stream(streamCtx, w.record)) }()
	if err := w.await(ctx, "event_stream_attached", 0); err != nil {
		return err
	}

	if code, err := c.do(ctx, "GET", "/v2/apps"+id, nil, nil); err == nil && code == http.StatusOK {
		fmt.Println("removing", id, "left from an earlier run")
		if err := c.deleteApp(ctx, id); err != nil {
			return err
		}
	}

	one, three := 1, 3
	fmt.Println("deploying", id)
	if code, err := c.do(ctx, "POST", "/v2/apps", app{ID: id, Cmd: cmd, Instances: &one, CPUs: 0.1, Mem: 32}, nil); err != nil {
		return err
	} else if code != http.StatusCreated {
		return fmt.Errorf("POST /v2/apps: status %d, want 201", code)
	}
	if err := c.waitRunning(ctx, id, 1, ""); err != nil {
		return err
	}
	for _, n := range []*int{&three, &one} {
		fmt.Println("scaling to", *n)
		if err := c.update(ctx, id, app{Instances: n}, nil); err != nil {
			return err
		}
		if err := c.waitRunning(ctx, id, *n, ""); err != nil {
			return err
		}
	}
	fmt.Println("changing the command: a rolling upgrade")
	mark := w.count("deployment_success")
	var res deploymentResult
	if err := c.update(ctx, id, app{Cmd: cmd + " # v2"}, &res); err != nil {
		return err
	}
	if err := c.waitRunning(ctx, id, 1, cmd+" # v2"); err != nil {
		return err
	}
	if err := w.await(ctx, "deployment_success", mark); err != nil {
		return err
	}
	fmt.Println("deleting", id)
	mark = w.count("app_terminated_event")
	if err := c.deleteApp(ctx, id); err != nil {
		return err
	}
	if err := w.await(ctx, "app_terminated_event", mark); err != nil {
		return err
	}
	order := w.types()
	for _, want := range []string{"api_post_event", "status_update_event", "deployment_info"} {
		if w.count(want) == 0 {
			return fmt.Errorf("no %s seen on /v2/events (saw %s)", want, strings.Join(order, ", "))
		}
	}
	fmt.Println("event types seen, in order:", strings.Join(order, ", "))
	return nil
}

// watcher prints events as they arrive and counts them by type.
type watcher struct {
	mu      sync.Mutex
	n       int
	counts  map[string]int
	order   []string
	err     error
	changed chan struct{} // a token whenever something was recorded
}

func newWatcher() *watcher {
	return &watcher{counts: map[string]int{}, changed: make(chan struct{}, 1)}
}

// record prints one event and counts it.
func (w *watcher) record(ev event) {
	w.mu.Lock()
	w.n++
	detail := ""
	if s, ok := ev.Data["taskStatus"].(string); ok {
		detail = " " + s
	}
	if s, ok := ev.Data["appId"].(string); ok {
		detail += " " + s
	}
	fmt.Printf("  event %d: %s%s\n", w.n, ev.Type, detail)
	if w.counts[ev.Type] == 0 {
		w.order = append(w.order, ev.Type)
	}
	w.counts[ev.Type]++
	w.mu.Unlock()
	w.poke()
}

// fail records the end of the stream.
func (w *watcher) fail(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
	w.poke()
}

func (w *watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) count(typ string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[typ]
}

func (w *watcher) types() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.order...)
}

// await waits until more than after events of type typ were seen.
func (w *watcher) await(ctx context.Context, typ string, after int) error {
	for {
		w.mu.Lock()
		n, err := w.counts[typ], w.err
		w.mu.Unlock()
		if n > after {
			return nil
		}
		if err != nil {
			return fmt.Errorf("/v2/events: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %s on /v2/events in time (saw %s)", typ, strings.Join(w.types(), ", "))
		case <-w.changed:
		}
	}
}

// client is a small Marathon v2 client.
type client struct {
	base string
	hc   *http.Client
}

// do sends one request (bounded by 15s) and decodes a JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return resp.StatusCode, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// update PUTs a partial app definition (Marathon's AppUpdate).
func (c *client) update(ctx context.Context, id string, upd app, res *deploymentResult) error {
	var out any
	if res != nil {
		out = res
	}
	code, err := c.do(ctx, "PUT", "/v2/apps"+id, upd, out)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("PUT /v2/apps%s: status %d, want 200", id, code)
	}
	return err
}

func (c *client) deleteApp(ctx context.Context, id string) error {
	if _, err := c.do(ctx, "DELETE", "/v2/apps"+id, nil, nil); err != nil {
		return err
	}
	return poll(ctx, "app "+id+" gone", func() error {
		code, err := c.do(ctx, "GET", "/v2/apps"+id, nil, nil)
		if code == http.StatusNotFound {
			return nil
		}
		if err == nil {
			err = errors.New("still there")
		}
		return err
	})
}

// waitRunning waits until the app runs exactly n tasks, none of them
// staged or of an older version, with no deployment in progress; with cmd
// set, also until the app's command is cmd.
func (c *client) waitRunning(ctx context.Context, id string, n int, cmd string) error {
	return poll(ctx, fmt.Sprintf("%s running %d task(s)", id, n), func() error {
		var r appResponse
		if _, err := c.do(ctx, "GET", "/v2/apps"+id+"?embed=app.tasks", nil, &r); err != nil {
			return err
		}
		a := r.App
		switch {
		case cmd != "" && a.Cmd != cmd:
			return fmt.Errorf("cmd is %q", a.Cmd)
		case len(a.Deployments) > 0:
			return fmt.Errorf("deployment %s in progress", a.Deployments[0].ID)
		case a.TasksRunning != n || len(a.Tasks) != n:
			return fmt.Errorf("%d running of %d tasks", a.TasksRunning, len(a.Tasks))
		}
		for _, t := range a.Tasks {
			if t.State != "TASK_RUNNING" {
				return fmt.Errorf("task %s is %s", t.ID, t.State)
			}
			if a.VersionInfo != nil && t.Version != a.VersionInfo.LastConfigChangeAt {
				return fmt.Errorf("task %s is of version %s, not %s", t.ID, t.Version, a.VersionInfo.LastConfigChangeAt)
			}
		}
		return nil
	})
}

// poll calls fn every 200ms until it returns nil or ctx ends.
func poll(ctx context.Context, what string, fn func() error) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %v", what, err)
		case <-t.C:
		}
	}
}

// stream reads /v2/events (Server-Sent Events), calling handle with each
// event in order, until ctx ends.
func (c *client) stream(ctx context.Context, handle func(event)) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v2/events", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("content type %q, want text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev event
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Type == "" && data.Len() == 0 {
				continue
			}
			if data.Len() > 0 {
				_ = json.Unmarshal([]byte(data.String()), &ev.Data)
			}
			if ev.Type == "" {
				// Marathon names the type in the data too.
				ev.Type, _ = ev.Data["eventType"].(string)
			}
			handle(ev)
			ev, data = event{}, strings.Builder{}
		case strings.HasPrefix(line, "event:"):
			ev.Type = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream ended")
}
