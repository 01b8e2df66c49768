package webui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	for _, c := range []struct {
		page       Page
		path, want string
		code       int
	}{
		{Cluster, "/", "Keel cluster", 200},
		{Apps, "/index.html", "Keel apps", 200},
		{Gateway, "/", "Keel gateway", 200},
		{Cluster, "/keel.js", "export async function getJSON", 200},
		{Cluster, "/keel.css", "--accent", 200},
		{Cluster, "/apps.html", "", 404},
		{Cluster, "/../webui.go", "", 404},
	} {
		rec := httptest.NewRecorder()
		Handler(c.page).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("%s %s: %d %.60q", c.page, c.path, rec.Code, body)
		}
	}
	rec := httptest.NewRecorder()
	Handler(Cluster).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}
