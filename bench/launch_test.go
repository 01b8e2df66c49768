package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/apps"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/master"
	"github.com/keelhq/keel/mesosclient"
)

// BenchmarkLaunch is BENCH.md's end-to-end scheduler figure: the time
// from POST /v2/apps of an app with N instances until the Marathon API
// reports N running, through the real master, allocator and apps
// framework (in-process, real HTTP on loopback), with M simulated agents
// that answer every launch with TASK_RUNNING. (The heap growth it also
// reads swings with GC timing between runs, so it is not reported.)
//
//	go test -run xxx -bench Launch -benchtime 1x ./bench
func BenchmarkLaunch(b *testing.B) {
	for _, c := range []struct{ tasks, agents int }{{1000, 100}, {10000, 1000}} {
		b.Run(fmt.Sprintf("tasks=%d/agents=%d", c.tasks, c.agents), func(b *testing.B) {
			var took time.Duration
			var grew uint64
			for i := 0; i < b.N; i++ {
				d, g := launch(b, c.tasks, c.agents)
				took += d
				grew += g
			}
			b.ReportMetric(float64(c.tasks*b.N)/took.Seconds(), "tasks/s")
			b.ReportMetric(took.Seconds()/float64(b.N), "s/launch")
			_ = grew // see launch: the heap figure is not reliable enough to report yet
		})
	}
}

// TestLaunch runs the benchmark's path small so it cannot rot.
func TestLaunch(t *testing.T) {
	if d, _ := launch(t, 50, 5); d <= 0 {
		t.Fatal("no launch time measured")
	}
}

func launch(b testing.TB, tasks, agents int) (time.Duration, uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := coord.OpenBolt(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	addrc := make(chan net.Addr, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		master.Run(ctx, master.Config{Listen: "127.0.0.1:0", Store: store, // the default allocation interval, as users run it
			AllocationInterval: time.Second,
			OnListen:           func(a net.Addr) { addrc <- a }, Logger: quiet()})
	}()
	url := "http://" + (<-addrc).String()
	for i := 0; i < agents; i++ {
		a := newAgent(b, ctx, url)
		wg.Add(1)
		go func() { defer wg.Done(); a.autoRun(ctx) }()
	}
	appsPort := freePort(b)
	fw, err := apps.New(ctx, apps.Config{Master: mesosclient.NewScheduler(url), Store: store,
		Listen: fmt.Sprintf("127.0.0.1:%d", appsPort), Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); fw.Run(ctx) }()
	api := fmt.Sprintf("http://127.0.0.1:%d", appsPort)
	waitFor(b, func() bool {
		resp, err := http.Get(api + "/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	app, _ := json.Marshal(map[string]any{"id": "/load", "cmd": "sleep 1000", "instances": tasks, "cpus": 0.01, "mem": 1,
		"portDefinitions": []any{}})
	start := time.Now()
	resp, err := http.Post(api+"/v2/apps", "application/json", bytes.NewReader(app))
	if err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("create: %v %v", err, resp)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Minute)
	lastLog := time.Now()
	for {
		resp, err := http.Get(api + "/v2/apps/load")
		if err != nil {
			b.Fatal(err)
		}
		var r marathon.AppResponse
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if r.App.TasksRunning == tasks {
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			b.Logf("%v: %d running, %d staged of %d", time.Since(start).Round(time.Second), r.App.TasksRunning, r.App.TasksStaged, tasks)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d running after 5 minutes", r.App.TasksRunning, tasks)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var grew uint64
	if after.HeapAlloc > before.HeapAlloc {
		grew = after.HeapAlloc - before.HeapAlloc
	}
	return took, grew
}

// autoRun answers every launch with TASK_RUNNING (with a UUID, so the
// master relays the framework's acknowledgement) and every ping with a
// pong, until ctx ends.
func (a *benchAgent) autoRun(ctx context.Context) {
	hc := &http.Client{Timeout: 10 * time.Second}
	post := func(c agent.Call) {
		c.AgentID = mesos.NewID(a.id)
		body, _ := json.Marshal(c)
		req, _ := http.NewRequestWithContext(ctx, "POST", a.url+agent.Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(agent.StreamIDHeader, a.stream)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-a.launches:
			uuid := make([]byte, 16)
			rand.Read(uuid)
			post(agent.Call{Type: agent.CallUpdate, Update: &agent.Update{FrameworkID: mesos.ID{Value: l.framework},
				Status: mesos.TaskStatus{TaskID: mesos.ID{Value: l.task}, State: mesos.TaskRunning, Source: mesos.SourceExecutor, UUID: uuid}}})
		case <-a.pings:
			post(agent.Call{Type: agent.CallPong})
		}
	}
}
