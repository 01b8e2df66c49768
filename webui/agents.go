package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The relay forwards a few read-only agent endpoints for the cluster page.
// It only ever connects to agents the master lists (asked with GET_AGENTS
// on the address the request came in on, that is the master serving the
// page), so it cannot be used to reach arbitrary hosts.

// relayed are the agent paths the relay forwards.
var relayed = map[string]bool{"state": true, "files/read": true, "files/browse": true}

const (
	relayTimeout  = 10 * time.Second
	agentsMaxAge  = 10 * time.Second
	agentsMinWait = time.Second
)

type agentRelay struct {
	client *http.Client
	// master returns the base URL of the master to ask for its agents.
	master func(r *http.Request) (string, error)

	mu      sync.Mutex
	addrs   map[string]string // agent ID -> host:port
	fetched time.Time
}

func newAgentRelay() *agentRelay {
	return &agentRelay{client: &http.Client{Timeout: relayTimeout}, master: localMaster}
}

// localMaster is the address the request arrived on: the master itself.
func localMaster(r *http.Request) (string, error) {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", errors.New("webui: no local address")
	}
	return "http://" + a.String(), nil
}

// agentAddr is the host:port of an agent from its PID
// ("slave(1)@10.0.0.5:5051"), or from its hostname and port.
func agentAddr(pid, hostname string, port int) string {
	if _, hp, ok := strings.Cut(pid, "@"); ok && hp != "" {
		if _, p, err := net.SplitHostPort(hp); err != nil || p == "0" {
			return "" // an agent started without HTTP endpoints
		}
		return hp
	}
	if hostname == "" || port == 0 {
		return ""
	}
	return net.JoinHostPort(hostname, fmt.Sprint(port))
}

// agentsResponse is the part of GET_AGENTS the relay reads.
type agentsResponse struct {
	GetAgents struct {
		Agents []struct {
			AgentInfo struct {
				ID       struct{ Value string } `json:"id"`
				Hostname string                 `json:"hostname"`
				Port     int                    `json:"port"`
			} `json:"agent_info"`
			PID string `json:"pid"`
		} `json:"agents"`
	} `json:"get_agents"`
}

func (a *agentRelay) fetchAgents(ctx context.Context, master string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, master+"/api/v1", bytes.NewReader([]byte(`{"type":"GET_AGENTS"}`)))
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("webui: GET_AGENTS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("webui: GET_AGENTS: %s", resp.Status)
	}
	var out agentsResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("webui: GET_AGENTS: %w", err)
	}
	addrs := map[string]string{}
	for _, ag := range out.GetAgents.Agents {
		if addr := agentAddr(ag.PID, ag.AgentInfo.Hostname, ag.AgentInfo.Port); addr != "" {
			addrs[ag.AgentInfo.ID.Value] = addr
		}
	}
	return addrs, nil
}

// lookup returns the address of agent id, asking the master again when the
// list is old or does not know id (at most once a second).
func (a *agentRelay) lookup(r *http.Request, id string) (string, error) {
	a.mu.Lock()
	addr, ok := a.addrs[id]
	age := time.Since(a.fetched)
	a.mu.Unlock()
	if ok && age < agentsMaxAge {
		return addr, nil
	}
	if !ok && age < agentsMinWait {
		return "", nil
	}
	master, err := a.master(r)
	if err != nil {
		return "", err
	}
	addrs, err := a.fetchAgents(r.Context(), master)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	a.addrs, a.fetched = addrs, time.Now()
	a.mu.Unlock()
	return addrs[id], nil
}

// ServeHTTP serves /agents/{id}/{path} by a GET of http://{agent}/{path}.
func (a *agentRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/agents/"), "/")
	if id == "" || !relayed[rest] {
		http.NotFound(w, r)
		return
	}
	addr, err := a.lookup(r, id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if addr == "" {
		http.Error(w, "webui: unknown agent "+id+", or it serves no HTTP endpoints", http.StatusNotFound)
		return
	}
	target := url.URL{Scheme: "http", Host: addr, Path: "/" + rest, RawQuery: r.URL.RawQuery}
	ctx, cancel := context.WithTimeout(r.Context(), relayTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := a.client.Do(req)
	if err != nil {
		http.Error(w, fmt.Sprintf("webui: agent %s: %v", id, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}
