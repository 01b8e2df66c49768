package agentd

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

func TestFilesAPI(t *testing.T) {
	dir := t.TempDir()
	box := filepath.Join(dir, "sandboxes", "F", "t1", "run")
	os.MkdirAll(box, 0o755)
	os.WriteFile(filepath.Join(box, "stdout"), []byte("hello world\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("no"), 0o644)
	os.Symlink(filepath.Join(dir, "secret"), filepath.Join(box, "escape"))
	a, err := New(Config{Master: "http://127.0.0.1:1", WorkDir: dir, Resources: DetectResources(dir)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler())
	defer srv.Close()
	get := func(path string, q url.Values) (int, map[string]any, []any) {
		resp, err := http.Get(srv.URL + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		json.NewDecoder(resp.Body).Decode(&raw)
		var obj map[string]any
		var list []any
		json.Unmarshal(raw, &obj)
		json.Unmarshal(raw, &list)
		return resp.StatusCode, obj, list
	}
	stdout := filepath.Join(box, "stdout")
	if code, obj, _ := get("/files/read", url.Values{"path": {stdout}, "offset": {"6"}, "length": {"5"}}); code != 200 || obj["data"] != "world" {
		t.Fatalf("read: %d %v", code, obj)
	}
	if _, obj, _ := get("/files/read", url.Values{"path": {stdout}, "offset": {"-1"}}); obj["offset"] != float64(12) {
		t.Fatalf("length: %v", obj)
	}
	if code, _, list := get("/files/browse", url.Values{"path": {box}}); code != 200 || len(list) != 2 {
		t.Fatalf("browse: %d %v", code, list)
	}
	for name, c := range map[string]struct {
		path string
		code int
	}{
		"dotdot":       {filepath.Join(box, "..", "..", "..", "..", "secret"), 403},
		"symlink out":  {filepath.Join(box, "escape"), 403},
		"absolute out": {"/etc/passwd", 403},
		"missing":      {filepath.Join(box, "nope"), 404},
		"no path":      {"", 400},
	} {
		if code, _, _ := get("/files/read", url.Values{"path": {c.path}}); code != c.code {
			t.Errorf("%s: got %d want %d", name, code, c.code)
		}
	}
	if code, obj, _ := get("/files/read", url.Values{"path": {stdout}, "offset": {"x"}}); code != 400 {
		t.Fatalf("bad offset: %d %v", code, obj)
	}
}
