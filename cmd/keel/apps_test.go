package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/internal/leakcheck"
	"github.com/keelhq/keel/internal/zktest"
)

func TestAppsFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want appsFlags
		err  string
	}{
		{"defaults", []string{"--master", "10.0.0.1:5050"}, appsFlags{master: "10.0.0.1:5050", ip: "0.0.0.0", port: 8080,
			workDir: "/var/lib/keel/apps", frameworkName: "marathon", localPortMin: 10000, localPortMax: 20000, zkSessionTimeout: 10 * time.Second}, ""},
		{"all set", []string{"--master", "zk://a:2181,b:2181/keel", "--marathon_ip", "127.0.0.1", "--marathon_port", "8081",
			"--hostname", "m1", "--work_dir", "/tmp/x", "--framework_name", "marathon-user", "--local_port_min", "20000", "--local_port_max", "21000"},
			appsFlags{master: "zk://a:2181,b:2181/keel", ip: "127.0.0.1", port: 8081, hostname: "m1", workDir: "/tmp/x",
				frameworkName: "marathon-user", localPortMin: 20000, localPortMax: 21000, zkSessionTimeout: 10 * time.Second}, ""},
		{"bad port", []string{"--marathon_port", "http"}, appsFlags{}, "invalid value"},
		{"zk", []string{"--master", "m:5050", "--zk", "zk://a:2181/marathon", "--zk_session_timeout", "3s"}, appsFlags{master: "m:5050",
			ip: "0.0.0.0", port: 8080, workDir: "/var/lib/keel/apps", frameworkName: "marathon", localPortMin: 10000, localPortMax: 20000,
			zk: "zk://a:2181/marathon", zkSessionTimeout: 3 * time.Second}, ""},
		{"unknown flag", []string{"--quorum", "2"}, appsFlags{}, "flag provided but not defined"},
		{"stray argument", []string{"--master", "m:5050", "extra"}, appsFlags{}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c common
			var f appsFlags
			err := c.parse(appsFlagSet(&c, &f), tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f != tc.want {
				t.Fatalf("got %+v, want %+v", f, tc.want)
			}
		})
	}
	if err := runApps(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "--master is required") {
		t.Fatalf("no --master: %v", err)
	}
}

// freePort returns a loopback port nobody listens on (just now).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestAppsAgainstMaster runs keel apps against a real master (started in
// process, without its built-in framework): the framework registers over
// HTTP under its --framework_name, serves the Marathon API on
// --marathon_port, and takes apps.
func TestAppsAgainstMaster(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	mport, aport := freePort(t), freePort(t)
	var c common
	var mf masterFlags
	if err := c.parse(masterFlagSet(&c, &mf), []string{"--ip", "127.0.0.1", "--port", fmt.Sprint(mport), "--apps=false",
		"--work_dir", filepath.Join(dir, "master")}); err != nil {
		t.Fatal(err)
	}
	log, _ := c.logger()
	g, gctx := errgroup.WithContext(ctx)
	if err := startMaster(gctx, g, mf, newRegistry(), log); err != nil {
		t.Fatal(err)
	}
	g.Go(func() error {
		return runApps(gctx, []string{"--master", fmt.Sprintf("127.0.0.1:%d", mport), "--marathon_ip", "127.0.0.1",
			"--marathon_port", fmt.Sprint(aport), "--work_dir", filepath.Join(dir, "apps"), "--framework_name", "marathon-alone"})
	})
	defer func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("stopped with: %v", err)
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	getJSON := func(url string, v any) error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(v)
	}
	marathonURL := fmt.Sprintf("http://127.0.0.1:%d", aport)
	eventually(t, "the framework registers with the master", 20*time.Second, func() error {
		var info struct {
			FrameworkID string `json:"frameworkId"`
		}
		if err := getJSON(marathonURL+"/v2/info", &info); err != nil {
			return err
		}
		if info.FrameworkID == "" {
			return fmt.Errorf("no framework ID yet")
		}
		var state struct {
			Frameworks []struct {
				ID, Name string
				Active   bool
			} `json:"frameworks"`
		}
		if err := getJSON(fmt.Sprintf("http://127.0.0.1:%d/master/state", mport), &state); err != nil {
			return err
		}
		for _, fw := range state.Frameworks {
			if fw.ID == info.FrameworkID && fw.Name == "marathon-alone" && fw.Active {
				return nil
			}
		}
		return fmt.Errorf("framework %s not active at the master: %+v", info.FrameworkID, state.Frameworks)
	})
	resp, err := hc.Post(marathonURL+"/v2/apps", "application/json", strings.NewReader(`{"id":"/alone","cmd":"sleep 1000","instances":0}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create app: %s", resp.Status)
	}
	var app struct {
		App struct{ ID string } `json:"app"`
	}
	if err := getJSON(marathonURL+"/v2/apps/alone", &app); err != nil || app.App.ID != "/alone" {
		t.Fatalf("get app: %v %+v", err, app)
	}
}

// startTestMaster starts a standalone master without its built-in
// framework and returns its host:port.
func startTestMaster(t *testing.T, ctx context.Context, g *errgroup.Group) string {
	t.Helper()
	port := freePort(t)
	var c common
	var mf masterFlags
	if err := c.parse(masterFlagSet(&c, &mf), []string{"--ip", "127.0.0.1", "--port", fmt.Sprint(port), "--apps=false",
		"--work_dir", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	log, _ := c.logger()
	if err := startMaster(ctx, g, mf, newRegistry(), log); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// httpDo sends one request with a timeout and returns status and body.
func httpDo(method, url, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestAppsHA runs two keel apps with --zk against one master: one leads
// and registers, the other proxies the Marathon API to it; when the
// leader stops, the other takes over with the same framework ID and the
// apps from the ZooKeeper store. Needs ZooKeeper (internal/zktest).
func TestAppsHA(t *testing.T) {
	leakcheck.Check(t)
	zks := zktest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	defer func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("master stopped with: %v", err)
		}
	}()
	master := startTestMaster(t, gctx, g)
	type instance struct {
		url    string
		cancel context.CancelFunc
		done   chan error
	}
	var inst [2]*instance
	for i := range inst {
		port := freePort(t)
		ictx, icancel := context.WithCancel(ctx)
		in := &instance{url: fmt.Sprintf("http://127.0.0.1:%d", port), cancel: icancel, done: make(chan error, 1)}
		go func() {
			in.done <- runApps(ictx, []string{"--master", master, "--marathon_ip", "127.0.0.1", "--marathon_port", fmt.Sprint(port),
				"--zk", "zk://" + zks.ConnectString() + "/marathon", "--zk_session_timeout", "3s", "--framework_name", "marathon-ha"})
		}()
		inst[i] = in
	}
	defer func() {
		for _, in := range inst {
			if in.cancel != nil {
				in.cancel()
				if err := <-in.done; err != nil {
					t.Errorf("keel apps stopped with: %v", err)
				}
			}
		}
	}()
	frameworkID := func(url string) (string, error) {
		code, body, err := httpDo("GET", url+"/v2/info", "")
		if err != nil || code != 200 {
			return "", fmt.Errorf("/v2/info: %d %v %s", code, err, body)
		}
		var info struct {
			FrameworkID string `json:"frameworkId"`
			Leader      string `json:"leader"`
		}
		if err := json.Unmarshal([]byte(body), &info); err != nil || info.FrameworkID == "" {
			return "", fmt.Errorf("not registered yet: %s", body)
		}
		return info.FrameworkID + " " + info.Leader, nil
	}
	// Both answer, the same leader.
	var first string
	eventually(t, "one instance leads and both answer for it", 30*time.Second, func() error {
		a, err := frameworkID(inst[0].url)
		if err != nil {
			return err
		}
		b, err := frameworkID(inst[1].url)
		if err != nil {
			return err
		}
		if a != b {
			return fmt.Errorf("%q vs %q", a, b)
		}
		first = a
		return nil
	})
	fid, leaderAddr, _ := strings.Cut(first, " ")
	lead, standby := inst[0], inst[1]
	if "http://"+leaderAddr != lead.url {
		lead, standby = standby, lead
	}
	if "http://"+leaderAddr != lead.url {
		t.Fatalf("leader %s is neither instance", leaderAddr)
	}
	// A write through the standby reaches the leader.
	if code, body, err := httpDo("POST", standby.url+"/v2/apps", `{"id":"/ha","cmd":"sleep 1000","instances":0}`); err != nil || code != 201 {
		t.Fatalf("create through the standby: %d %v %s", code, err, body)
	}
	lead.cancel()
	if err := <-lead.done; err != nil {
		t.Errorf("leader stopped with: %v", err)
	}
	lead.cancel = nil
	eventually(t, "the standby takes over with the same framework and apps", 30*time.Second, func() error {
		got, err := frameworkID(standby.url)
		if err != nil {
			return err
		}
		if got != fid+" "+strings.TrimPrefix(standby.url, "http://") {
			return fmt.Errorf("info %q, want framework %s led by %s", got, fid, standby.url)
		}
		code, body, err := httpDo("GET", standby.url+"/v2/apps/ha", "")
		if err != nil || code != 200 {
			return fmt.Errorf("app after failover: %d %v %s", code, err, body)
		}
		return nil
	})
}

// eventually polls fn until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, within time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
