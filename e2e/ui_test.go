package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/keelhq/keel/webui"
)

// chromiumPackage is the Debian package of the browser the UI tests drive.
const chromiumPackage = "chromium"

// browser starts a headless chromium for t and returns its tab's context.
// Uncaught JavaScript exceptions of the pages fail the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: the web UI tests need the Debian package %q (apt-get install -y %s)", chromiumPackage, chromiumPackage)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	tctx, tcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { tcancel(); acancel(); cancel() })
	if err := chromedp.Do(tctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var mu sync.Mutex
	var exceptions []string
	if err := chromedp.Listen(tctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			exceptions = append(exceptions, e.ExceptionDetails.Text+": "+describe(e.ExceptionDetails))
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range exceptions {
			t.Errorf("uncaught JavaScript exception: %s", e)
		}
	})
	return tctx
}

func describe(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return fmt.Sprintf("%s:%d", d.URL, d.LineNumber)
}

// ui runs browser steps and fails the test with what was being done.
type ui struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func (u *ui) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	if err := chromedp.Do(u.ctx, steps...); err != nil {
		u.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript expression until it is truthy and returns it.
func (u *ui) wait(what, expr string, timeout time.Duration) string {
	u.t.Helper()
	v, err := chromedp.Run(u.ctx, chromedp.Poll[any](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		page, _ := chromedp.Run(u.ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		u.t.Fatalf("%s: not true after %s: %v\npage text:\n%s", what, timeout, err, page)
	}
	return fmt.Sprint(v)
}

func (u *ui) eval(expr string) string {
	u.t.Helper()
	v, err := chromedp.Run(u.ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		u.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return fmt.Sprint(v)
}

func (u *ui) screenshot(name string) {
	u.t.Helper()
	b, err := chromedp.Run(u.ctx, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	if err != nil {
		u.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(u.shots, name+".png")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		u.t.Fatal(err)
	}
	u.t.Logf("screenshot: %s", p)
}

// uiAppCmd writes more than 16 KiB to stdout, a marker line, then a line
// every half second while it serves HTTP.
const uiAppCmd = `for i in $(seq 1 2000); do echo "early-line-$i"; done; echo "ui-hello-output from $MESOS_TASK_ID"; ` +
	`(while sleep 0.5; do echo "tick $i"; done) & exec python3 -m http.server --bind 127.0.0.1 $PORT0`

// TestWebUI drives the three pages in a real browser against keel dev:
// create an app through the form, watch it run, scale it, see validation
// errors next to the form field and under pasted JSON, tail a task's
// stdout on the cluster page, find the app's route, DNS records and
// request rate on the gateway page, then restart, edit (through the diff),
// suspend and destroy the app.
func TestWebUI(t *testing.T) {
	need(t, "python3")
	ctx := browser(t)
	d := startDev(t, t.TempDir(), "--agent_port", fmt.Sprint(freePort(t))) // the task page reads the files API
	shots, err := os.MkdirTemp("", "keel-ui-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	u := &ui{t: t, ctx: ctx, shots: shots}
	master := fmt.Sprintf("http://127.0.0.1:%d", d.masterPort)
	gateway := fmt.Sprintf("http://127.0.0.1:%d", d.adminPort)
	apps := fmt.Sprintf("http://127.0.0.1:%d/ui/?master=%s&gateway=%s", d.marathonPort, master, gateway)

	// Create an app through the form.
	u.do("open the apps page", chromedp.Navigate(apps), chromedp.WaitVisible(chromedp.CSS("#create")))
	u.wait("the event stream is live", `document.getElementById("live").textContent === "live"`, 20*time.Second)
	u.do("fill in the form",
		chromedp.SetValue(chromedp.CSS(`input[name="id"]`), "/uitest"),
		chromedp.SetValue(chromedp.CSS(`input[name="cmd"]`), uiAppCmd),
		chromedp.SetValue(chromedp.CSS(`input[name="instances"]`), "1"),
		chromedp.SetValue(chromedp.CSS(`input[name="mem"]`), "32"),
		chromedp.SetValue(chromedp.CSS(`input[name="ports"]`), "http"),
		chromedp.SetValue(chromedp.CSS(`textarea[name="labels"]`), "HAPROXY_GROUP=external\nHAPROXY_0_VHOST=uitest.example.com"),
		chromedp.Click(chromedp.CSS("#create")))
	u.wait("the form reports the app created", `document.getElementById("create-ok").textContent.includes("/uitest")`, 10*time.Second)
	row := `document.querySelector('tr[data-app="/uitest"]')`
	u.wait("the app reaches running", row+`?.querySelector("[data-running]")?.textContent === "1 / 1"`, 60*time.Second)
	u.wait("its status is running", row+`?.querySelector("[data-status]")?.textContent === "running"`, 30*time.Second)
	var app struct {
		App struct {
			Instances int               `json:"instances"`
			Labels    map[string]string `json:"labels"`
		} `json:"app"`
	}
	b, err := d.marathon("GET", "/v2/apps/uitest", nil, http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &app); err != nil || app.App.Instances != 1 || app.App.Labels["HAPROXY_0_VHOST"] != "uitest.example.com" {
		t.Fatalf("the app the form created: %v %s", err, b)
	}

	// Scale it from the UI. Setting the value and clicking in one step keeps
	// a refresh of the table from landing in between.
	u.eval(`(() => { const r = ` + row + `; r.querySelector("input[data-scale]").value = "2"; r.querySelector('button[data-action="scale"]').click(); return true; })()`)
	u.wait("the app runs 2 instances", row+`?.querySelector("[data-running]")?.textContent === "2 / 2"`, 60*time.Second)
	if b, err := d.marathon("GET", "/v2/apps/uitest", nil, http.StatusOK); err != nil || json.Unmarshal(b, &app) != nil || app.App.Instances != 2 {
		t.Fatalf("after scaling from the UI: %v %s", err, b)
	}
	u.do("open the app's tasks", chromedp.Click(chromedp.CSS(`tr[data-app="/uitest"] a`)))
	u.wait("the task list shows 2 running tasks", `document.querySelectorAll("tr.detail tr[data-task] .TASK_RUNNING").length === 2`, 20*time.Second)
	u.screenshot("apps")

	// A bad field gets its error next to it.
	u.do("submit a bad app",
		chromedp.SetValue(chromedp.CSS(`input[name="id"]`), "/uibad"),
		chromedp.SetValue(chromedp.CSS(`input[name="cpus"]`), "-1"),
		chromedp.Click(chromedp.CSS("#create")))
	msg := u.wait("the cpus field shows its error", `document.querySelector('input[name="cpus"]').classList.contains("invalid") && document.querySelector('input[name="cpus"] + .field-error').textContent`, 10*time.Second)
	if !strings.Contains(msg, "-1") {
		t.Errorf("cpus error %q does not name the bad value", msg)
	}
	if other := u.eval(`document.querySelector('input[name="mem"]').classList.contains("invalid")`); other != "false" {
		t.Errorf("the mem field is marked invalid too")
	}
	u.screenshot("apps-validation")
	if _, err := d.marathon("GET", "/v2/apps/uibad", nil, http.StatusNotFound); err != nil {
		t.Fatalf("the invalid app exists: %v", err)
	}
	// Pasted JSON: the errors are listed under it.
	u.do("paste a bad definition",
		chromedp.Click(chromedp.CSS("#tab-json")),
		chromedp.SetValue(chromedp.CSS("#def"), `{"id": "/uijson", "cmd": "sleep 100", "mem": "lots"}`),
		chromedp.Click(chromedp.CSS("#create")))
	u.wait("the pasted JSON's error is shown", `document.getElementById("create-err").textContent.includes("/mem")`, 10*time.Second)
	u.do("back to the form", chromedp.Click(chromedp.CSS("#tab-form")))
	if _, err := d.marathon("GET", "/v2/apps/uijson", nil, http.StatusNotFound); err != nil {
		t.Fatalf("the invalid pasted app exists: %v", err)
	}

	// Follow a task's link to the cluster page and tail its stdout.
	href := u.eval(`document.querySelector("tr.detail a.task-link").href`)
	if !strings.HasPrefix(href, master+"/?") || !strings.Contains(href, "#/tasks/uitest.") {
		t.Fatalf("task link %q does not lead to the cluster page", href)
	}
	u.do("open the task page", chromedp.Navigate(href))
	u.wait("the task page shows the task running", `document.querySelector("#task-facts .TASK_RUNNING")`, 20*time.Second)
	u.wait("the status history lists RUNNING", `[...document.querySelectorAll("#task-statuses .state")].some(e => e.textContent === "RUNNING")`, 10*time.Second)
	u.wait("the stdout tail shows the app's output", `document.getElementById("tail").textContent.includes("ui-hello-output from uitest.")`, 30*time.Second)
	// It started at the last 16 KiB, on a whole line, and follows new bytes.
	first := u.eval(`document.getElementById("tail").textContent.split("\n")[0]`)
	var n int
	if _, err := fmt.Sscanf(first, "early-line-%d", &n); err != nil || first != fmt.Sprintf("early-line-%d", n) {
		t.Errorf("the tail starts with %q, want a whole early-line-N", first)
	}
	shown := 0
	for i := n; i <= 2000; i++ {
		shown += len(fmt.Sprintf("early-line-%d\n", i))
	}
	if n <= 1 || shown > 16<<10 {
		t.Errorf("the tail starts at early-line-%d: %d bytes of early lines, want the last 16 KiB at most", n, shown)
	}
	ticks := `document.getElementById("tail").textContent.split("\n").filter(l => l.startsWith("tick ")).length`
	u.wait("the tail follows new output", ticks+` >= 3`, 20*time.Second)
	u.screenshot("task")

	u.do("open the cluster page", chromedp.Navigate(master+"/"))
	u.wait("the cluster page lists the 2 running tasks", `[...document.querySelectorAll("#tasks tr")].filter(r => r.textContent.includes("uitest.") && r.querySelector(".TASK_RUNNING")).length === 2`, 20*time.Second)
	u.wait("the agent shows used resources", `document.querySelector("#agents tr td.res")?.textContent.includes("0.2 /")`, 10*time.Second)
	u.do("search tasks", chromedp.SendKeys(chromedp.CSS("#filter"), "no-such-task"))
	u.wait("search hides every task", `document.querySelectorAll("#tasks tr").length === 0`, 10*time.Second)
	u.eval(`(() => { const f = document.getElementById("filter"); f.value = ""; f.dispatchEvent(new Event("input")); return true; })()`)
	u.do("search for the app", chromedp.SendKeys(chromedp.CSS("#filter"), "uitest"))
	u.wait("search finds the tasks", `document.querySelectorAll("#tasks tr").length === 2`, 10*time.Second)
	u.screenshot("cluster")

	// The gateway page, reached by the cluster page's navigation (the apps
	// page passed the addresses on), lists the route with both backends.
	navLink := u.eval(`document.querySelector("#nav a:last-child").href`)
	if !strings.HasPrefix(navLink, gateway+"/?") || !strings.Contains(navLink, "master=") {
		t.Fatalf("the cluster page's gateway link is %q, want %s/?...", navLink, gateway)
	}
	u.do("follow the nav link to the gateway page", chromedp.Navigate(navLink))
	u.wait("the gateway lists the app's route", `(() => { const r = document.querySelector('#routes tr[data-app="/uitest"]'); return r && r.textContent.includes("uitest.example.com") && r.querySelectorAll("li").length === 2; })()`, 30*time.Second)
	u.wait("the route says it is the cluster's and its backends are up", `(() => { const r = document.querySelector('#routes tr[data-app="/uitest"]'); return r.children[1].textContent === "app" && [...r.querySelectorAll("li span.ok")].filter(s => s.textContent.startsWith("up")).length === 2; })()`, 10*time.Second)
	u.wait("the DNS browser lists the app", `[...document.querySelectorAll("#dns tr")].some(r => r.textContent.includes("uitest.marathon.mesos."))`, 20*time.Second)
	u.do("search DNS records", chromedp.SendKeys(chromedp.CSS("#dns-filter"), "_uitest._tcp.marathon.slave"))
	u.wait("the DNS search keeps the app's SRV records", `document.querySelectorAll("#dns tr").length === 2`, 10*time.Second)

	// Requests through the proxy show up as a rate per app, from two
	// scrapes of /metrics.
	rate := `(() => { const r = document.querySelector('#rates tr[data-app="/uitest"]'); return r && Number(r.children[1].textContent) > 0 && r.children[1].textContent; })()`
	deadline := time.Now().Add(30 * time.Second)
	for {
		for i := 0; i < 5; i++ {
			if _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", d.httpPort), "uitest.example.com"); err != nil {
				t.Fatalf("request through the proxy: %v", err)
			}
		}
		if v := u.eval(rate); v != "false" && v != "<nil>" {
			t.Logf("request rate of /uitest: %s/s", v)
			break
		}
		if time.Now().After(deadline) {
			u.wait("the traffic table shows requests of /uitest", rate, time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	u.screenshot("gateway")

	// Restart replaces every task.
	u.do("open the apps page again", chromedp.Navigate(apps))
	u.wait("the app is listed", row, 20*time.Second)
	before, err := d.app("/uitest")
	if err != nil {
		t.Fatal(err)
	}
	u.do("restart the app", chromedp.Click(chromedp.CSS(`tr[data-app="/uitest"] button[data-action="restart"]`)))
	d.eventually("the restart replaces both tasks", 60*time.Second, func() error {
		a, err := d.app("/uitest")
		if err != nil {
			return err
		}
		running := 0
		for _, tk := range a.Tasks {
			for _, old := range before.Tasks {
				if tk.ID == old.ID {
					return fmt.Errorf("task %s is still there", tk.ID)
				}
			}
			if tk.State == "TASK_RUNNING" {
				running++
			}
		}
		if running != 2 {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
	u.wait("the page shows the app running again", row+`?.querySelector("[data-status]")?.textContent === "running"`, 30*time.Second)

	// Edit the app: the diff shows the change before it is deployed.
	u.do("edit the app", chromedp.Click(chromedp.CSS(`tr[data-app="/uitest"] button[data-action="edit"]`)))
	u.wait("the editor shows the definition", `document.getElementById("edit").open && document.getElementById("edit-def").value.includes('"mem": 32')`, 10*time.Second)
	u.eval(`(() => { const e = document.getElementById("edit-def"); e.value = e.value.replace('"mem": 32', '"mem": 48'); e.dispatchEvent(new Event("input")); return true; })()`)
	u.do("review the change", chromedp.Click(chromedp.CSS("#edit-review")))
	u.wait("the diff shows the change", `[...document.querySelectorAll("#edit-diff .del")].some(e => e.textContent.includes('"mem": 32')) && [...document.querySelectorAll("#edit-diff .add")].some(e => e.textContent.includes('"mem": 48')) && document.querySelectorAll("#edit-diff .add").length === 1`, 10*time.Second)
	u.screenshot("apps-edit")
	u.do("deploy the change", chromedp.Click(chromedp.CSS("#edit-deploy")))
	u.wait("the editor closes", `!document.getElementById("edit").open`, 10*time.Second)
	d.eventually("the new definition is stored", 10*time.Second, func() error {
		a, err := d.app("/uitest")
		if err != nil {
			return err
		}
		if a.Mem == nil || *a.Mem != 48 {
			return fmt.Errorf("mem %v", a.Mem)
		}
		return nil
	})
	u.wait("the deployment finishes with 2 running", row+`?.querySelector("[data-status]")?.textContent === "running" && `+row+`.textContent.includes("48 MiB")`, 60*time.Second)

	// Suspend, then destroy (a second click confirms).
	u.do("suspend the app", chromedp.Click(chromedp.CSS(`tr[data-app="/uitest"] button[data-action="suspend"]`)))
	u.wait("the app is suspended", row+`?.querySelector("[data-status]")?.textContent === "suspended" && `+row+`.querySelector("[data-running]").textContent === "0 / 0"`, 60*time.Second)
	u.eval(`(() => { const b = ` + row + `.querySelector('button[data-action="destroy"]'); b.click(); return b.textContent; })()`)
	u.wait("destroy asks for confirmation", row+`.querySelector('button[data-action="destroy"]').textContent === "Confirm destroy"`, 5*time.Second)
	if _, err := d.marathon("GET", "/v2/apps/uitest", nil, http.StatusOK); err != nil {
		t.Fatalf("one click destroyed the app: %v", err)
	}
	u.eval(row + `.querySelector('button[data-action="destroy"]').click() || true`)
	u.wait("the app is gone from the list", `!`+row, 30*time.Second)
	if _, err := d.marathon("GET", "/v2/apps/uitest", nil, http.StatusNotFound); err != nil {
		t.Fatalf("after destroy: %v", err)
	}
}

// TestWebUIClusterAtScale loads the cluster page against a stand-in of the
// operator API with 10,000 tasks (more than this machine can run for
// real): the page renders one page of rows, filters and searches all of
// them, and applies a TASK_UPDATED from the live stream. It also checks
// the shared JavaScript helpers (RecordIO, diff, Prometheus parsing).
func TestWebUIClusterAtScale(t *testing.T) {
	ctx := browser(t)
	const n = 10000
	state := func(i int) string {
		switch {
		case i%20 == 0:
			return "TASK_FAILED"
		case i%20 == 1:
			return "TASK_STAGING"
		}
		return "TASK_RUNNING"
	}
	type id struct {
		Value string `json:"value"`
	}
	res := func(cpus, mem float64) []map[string]any {
		return []map[string]any{{"name": "cpus", "type": "SCALAR", "scalar": map[string]float64{"value": cpus}},
			{"name": "mem", "type": "SCALAR", "scalar": map[string]float64{"value": mem}}}
	}
	var tasks, completed, agents []map[string]any
	for a := 0; a < 20; a++ {
		agents = append(agents, map[string]any{"agent_info": map[string]any{"id": id{fmt.Sprintf("S%d", a)}, "hostname": fmt.Sprintf("agent%02d", a), "port": 5051},
			"active": true, "pid": fmt.Sprintf("slave(1)@10.0.0.%d:5051", a), "total_resources": res(64, 262144)})
	}
	for i := 0; i < n; i++ {
		tk := map[string]any{"name": "load", "task_id": id{fmt.Sprintf("load-%05d", i)}, "framework_id": id{"F1"}, "agent_id": id{fmt.Sprintf("S%d", i%20)},
			"state": state(i), "resources": res(0.01, 16), "statuses": []map[string]any{{"state": state(i), "timestamp": 1.7e9 + float64(i)}}}
		if state(i) == "TASK_FAILED" {
			completed = append(completed, tk)
		} else {
			tasks = append(tasks, tk)
		}
	}
	subscribed, _ := json.Marshal(map[string]any{"type": "SUBSCRIBED", "subscribed": map[string]any{"get_state": map[string]any{
		"get_tasks":      map[string]any{"tasks": tasks, "completed_tasks": completed},
		"get_agents":     map[string]any{"agents": agents},
		"get_frameworks": map[string]any{"frameworks": []map[string]any{{"framework_info": map[string]any{"id": id{"F1"}, "name": "load", "roles": []string{"batch"}}, "active": true, "connected": true}}},
	}}})
	events := make(chan []byte, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Type string }
		json.NewDecoder(r.Body).Decode(&req)
		switch req.Type {
		case "GET_ROLES":
			io.WriteString(w, `{"type":"GET_ROLES","get_roles":{"roles":[{"name":"batch","weight":2.5,"frameworks":[{"value":"F1"}],"resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":95}}]}]}}`)
		case "SUBSCRIBE":
			w.Header().Set("Content-Type", "application/recordio")
			fmt.Fprintf(w, "%d\n%s", len(subscribed), subscribed)
			w.(http.Flusher).Flush()
			for {
				select {
				case ev := <-events:
					fmt.Fprintf(w, "%d\n%s", len(ev), ev)
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
			}
		default:
			http.Error(w, "unexpected "+req.Type, http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /master/state", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"version":"test","id":"M1","hostname":"m1","leader":"master@m1:5050","leader_info":{"id":"M1","hostname":"m1","port":5050},"start_time":1700000000,"elected_time":1700000001}`)
	})
	mux.Handle("/", webui.Handler(webui.Cluster))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The page keeps its stream open: close the browser before the server.
	defer chromedp.Cancel(ctx)
	u := &ui{t: t, ctx: ctx}

	start := time.Now()
	u.do("open the cluster page", chromedp.Navigate(srv.URL+"/"))
	pagerText := `document.getElementById("tasks-pager").textContent`
	u.wait("the first page of active tasks", pagerText+`.includes("1–50 of 9500")`, 30*time.Second)
	t.Logf("10,000 tasks rendered in %s", time.Since(start).Round(time.Millisecond))
	if rows := u.eval(`document.querySelectorAll("#tasks tr").length`); rows != "50" {
		t.Errorf("%s task rows in the DOM, want one page of 50", rows)
	}
	u.wait("the agents", `document.querySelectorAll("#agents tr").length === 20`, 5*time.Second)
	u.wait("the role with its weight", `document.querySelector("#roles tr")?.textContent.includes("2.5")`, 10*time.Second)
	u.do("next page", chromedp.Click(chromedp.CSS("#tasks-pager button:last-child")))
	u.wait("the second page", pagerText+`.includes("51–100 of 9500")`, 5*time.Second)
	u.do("only failed tasks", chromedp.Click(chromedp.CSS(`button[data-state="TASK_FAILED"]`)))
	u.wait("500 failed tasks from the first page", pagerText+`.includes("1–50 of 500")`, 5*time.Second)
	u.do("all tasks", chromedp.Click(chromedp.CSS(`button[data-state="all"]`)))
	u.do("search one task", chromedp.SendKeys(chromedp.CSS("#filter"), "load-01234"))
	u.wait("the search finds it alone", pagerText+`.includes("1–1 of 1") && document.querySelector("#tasks .TASK_RUNNING")`, 5*time.Second)

	up, _ := json.Marshal(map[string]any{"type": "TASK_UPDATED", "task_updated": map[string]any{"framework_id": id{"F1"}, "state": "TASK_KILLED",
		"status": map[string]any{"task_id": id{"load-01234"}, "state": "TASK_KILLED", "agent_id": id{"S14"}, "timestamp": 1.8e9}}})
	events <- up
	u.wait("the live update reaches the row", `document.querySelector("#tasks .TASK_KILLED")?.textContent === "KILLED"`, 10*time.Second)
	u.wait("and the counts", `document.querySelector('button[data-state="active"]').textContent === "active 9499"`, 5*time.Second)

	// The shared helpers, on the same origin.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`import("/keel.js").then(k => {
		const out = [];
		const rio = new k.RecordIO(), enc = new TextEncoder();
		const a = JSON.stringify({m: "héllo ✓"}), b = JSON.stringify({n: 2});
		const bytes = enc.encode(enc.encode(a).length + "\n" + a + b.length + "\n" + b);
		const recs = [];
		for (let i = 0; i < bytes.length; i += 3) recs.push(...rio.push(bytes.subarray(i, i + 3)));
		out.push(JSON.stringify(recs));
		out.push(k.diffLines("a\nb\nc", "a\nB\nc").map(d => d.join("")).join("|"));
		const p = k.parseProm('# HELP x\nkeel_proxy_requests_total{app="/a",code_class="2xx"} 7\nup 1\nq{l="a\\"b"} 2.5e1\n');
		out.push(p.map(s => s.name + JSON.stringify(s.labels) + s.value).join("|"));
		out.push(JSON.stringify(["ab\uFFFD", "\uFFFDab", "é\n", "\uFFFD"].map(k.fileChunk)));
		return out.join("\n");
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"m":"héllo ✓"},{"n":2}]` + "\n" + ` a|-b|+B| c` + "\n" +
		`keel_proxy_requests_total{"app":"/a","code_class":"2xx"}7|up{}1|q{"l":"a\"b"}25` + "\n" +
		`[["ab",2],["�ab",3],["é\n",3],["�",1]]`
	if got != want {
		t.Errorf("helpers:\n%s\nwant\n%s", got, want)
	}
}
