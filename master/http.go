package master

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/keelhq/keel/api/agent"
)

// handler returns the routes of a leading master's APIs, built once per
// term.
func (m *Master) handler() http.Handler {
	m.muxOnce.Do(func() {
		mux := http.NewServeMux()
		mux.HandleFunc("/api/v1/scheduler", m.handleScheduler)
		mux.HandleFunc("/api/v1", m.handleOperator)
		mux.HandleFunc(agent.Path, m.handleAgent)
		mux.HandleFunc("GET /master/state", m.handleState)
		mux.HandleFunc("GET /state.json", m.handleState)
		mux.HandleFunc("GET /master/state.json", m.handleState)
		mux.HandleFunc("GET /metrics/snapshot", m.handleMetricsSnapshot)
		if m.cfg.Extra != nil {
			mux.Handle("/", m.cfg.Extra)
		}
		m.mux = mux
	})
	return m.mux
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
