package webui

import (
	"embed"
	"io/fs"
	"net/http"
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
// (keel.css, keel.js) next to it. Mount it under a prefix with
// http.StripPrefix.
func Handler(page Page) http.Handler {
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch r.URL.Path {
		case "/", "", "/index.html":
			b, err := fs.ReadFile(sub, string(page))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b)
			return
		case "/keel.css", "/keel.js":
			files.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
}
