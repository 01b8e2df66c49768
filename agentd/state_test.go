package agentd

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

// /state has Mesos' agent shape: frameworks -> executors (with the
// sandbox directory) -> tasks, v0 resources, and is readable cross-origin.
func TestStateShape(t *testing.T) {
	dir := t.TempDir()
	res, _ := mesos.ParseResources("cpus:2;mem:1024;ports:[31000-31009]")
	a, err := New(Config{Master: "http://127.0.0.1:1", WorkDir: dir, Resources: res, IP: "127.0.0.9", Hostname: "n9",
		Attributes: []mesos.Attribute{{Name: "rack", Type: "TEXT", Text: &mesos.Text{Value: "r1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	a.id = "A1"
	a.tasks["web.1"] = &task{info: mesos.TaskInfo{Name: "web", TaskID: mesos.ID{Value: "web.1"}, Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.5)}},
		fid: mesos.ID{Value: "F1"}, fwInfo: mesos.FrameworkInfo{Name: "marathon", Roles: []string{"prod"}}, state: mesos.TaskRunning,
		sandbox: dir + "/sandboxes/F1/web.1/run"}
	a.mu.Unlock()
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("Access-Control-Allow-Origin %q", got)
	}
	var st struct {
		ID         string         `json:"id"`
		PID        string         `json:"pid"`
		Resources  map[string]any `json:"resources"`
		Attributes map[string]any `json:"attributes"`
		Frameworks []struct {
			ID, Name, Role string
			Executors      []struct {
				ID, Directory string
				Tasks         []mesos.Task
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.ID != "A1" || st.PID != "slave(1)@127.0.0.9:5051" || st.Resources["ports"] != "[31000-31009]" || st.Attributes["rack"] != "r1" {
		t.Fatalf("agent: %+v", st)
	}
	if len(st.Frameworks) != 1 || st.Frameworks[0].Name != "marathon" || st.Frameworks[0].Role != "prod" ||
		len(st.Frameworks[0].Executors) != 1 || st.Frameworks[0].Executors[0].Directory != dir+"/sandboxes/F1/web.1/run" ||
		st.Frameworks[0].Executors[0].Tasks[0].TaskID.Value != "web.1" {
		t.Fatalf("frameworks: %+v", st.Frameworks)
	}
}
