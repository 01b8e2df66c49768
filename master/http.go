package master

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keelhq/keel/api/agent"
)

// Handler returns the master's HTTP routes.
func (m *Master) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/scheduler", m.handleScheduler)
	mux.HandleFunc("/api/v1", m.handleOperator)
	mux.HandleFunc(agent.Path, m.handleAgent)
	mux.HandleFunc("GET /master/state", m.handleState)
	mux.HandleFunc("GET /state.json", m.handleState)
	mux.HandleFunc("GET /master/state.json", m.handleState)
	mux.HandleFunc("GET /master/redirect", func(w http.ResponseWriter, r *http.Request) {
		// Standalone: this master leads. With HA this follows the election.
		http.Redirect(w, r, "//"+m.info.Address.Hostname+":"+itoa(m.info.Port), http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": m.cfg.Version})
	})
	mux.HandleFunc("GET /metrics/snapshot", m.handleMetricsSnapshot)
	if m.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(m.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	if m.cfg.Extra != nil {
		mux.Handle("/", m.cfg.Extra)
	}
	return mux
}

// errorBody is the JSON of every error the master returns.
type errorBody struct {
	Message string `json:"message"`
}

func httpError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonContent(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func asMaxBytes(err error, target **http.MaxBytesError) bool { return errors.As(err, target) }
