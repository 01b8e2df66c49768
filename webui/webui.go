package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Page names the entry page a Handler serves at its root.
type Page string

// The pages.
const (
	Cluster Page = "cluster.html"
	Apps    Page = "apps.html"
	Gateway Page = "gateway.html"
)

// Handler serves page at "/" (and index.html) and the shared assets
// (the .js and .css files) next to it. Mount it under a prefix with
// http.StripPrefix. The cluster page's handler also serves
// /agents/{id}/{state,files/read,files/browse}: a read-only relay to the
// agents the master lists, so the page can tail a task's sandbox when the
// browser cannot reach the agents (or they send no CORS headers).
func Handler(page Page) http.Handler {
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	var relay *agentRelay
	if page == Cluster {
		relay = newAgentRelay()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := r.URL.Path
		switch {
		case p == "/" || p == "" || p == "/index.html":
			b, err := fs.ReadFile(sub, string(page))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b)
		case relay != nil && strings.HasPrefix(p, "/agents/"):
			relay.ServeHTTP(w, r)
		case isAsset(p):
			w.Header().Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// isAsset reports whether p names a shared script or style sheet at the
// top of static/ (the pages themselves are served only at "/").
func isAsset(p string) bool {
	if path.Clean(p) != p || strings.Count(p, "/") != 1 {
		return false
	}
	ext := path.Ext(p)
	if ext != ".js" && ext != ".css" {
		return false
	}
	_, err := fs.Stat(static, "static"+p)
	return err == nil
}
