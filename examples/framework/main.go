// Command framework is a minimal Mesos framework written only against the
// Mesos v1 scheduler HTTP API: its own JSON types and HTTP client, nothing
// of Keel. It subscribes, launches one command task on the first offer that
// fits, waits for TASK_RUNNING, kills it, waits for TASK_KILLED,
// acknowledging every update, then tears itself down. Any Mesos master
// should run it; CI runs it against keel master + keel agent.
//
//	go run ./examples/framework --master 127.0.0.1:5050
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The wire types this framework needs (names as in v1/scheduler.proto).
type id struct {
	Value string `json:"value"`
}

type resource struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Scalar *struct {
		Value float64 `json:"value"`
	} `json:"scalar,omitempty"`
}

type offer struct {
	ID        id         `json:"id"`
	AgentID   id         `json:"agent_id"`
	Hostname  string     `json:"hostname"`
	Resources []resource `json:"resources"`
}

type status struct {
	TaskID  id     `json:"task_id"`
	AgentID *id    `json:"agent_id,omitempty"`
	State   string `json:"state"`
	Message string `json:"message,omitempty"`
	UUID    []byte `json:"uuid,omitempty"`
}

type event struct {
	Type       string `json:"type"`
	Subscribed *struct {
		FrameworkID id `json:"framework_id"`
	} `json:"subscribed,omitempty"`
	Offers *struct {
		Offers []offer `json:"offers"`
	} `json:"offers,omitempty"`
	Update *struct {
		Status status `json:"status"`
	} `json:"update,omitempty"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

type client struct {
	url, streamID, frameworkID string
	hc                         *http.Client
}

func (c *client) call(ctx context.Context, body map[string]any) error {
	body["framework_id"] = map[string]string{"value": c.frameworkID}
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mesos-Stream-Id", c.streamID)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", body["type"], resp.StatusCode, msg)
	}
	return nil
}

func main() {
	master := flag.String("master", "127.0.0.1:5050", "master host:port")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	flag.Parse()
	log.SetFlags(0)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, "http://"+*master+"/api/v1/scheduler"); err != nil {
		log.Fatalf("framework: %v", err)
	}
	fmt.Println("done")
}

func run(ctx context.Context, url string) error {
	c := &client{url: url, hc: &http.Client{}}
	sub, _ := json.Marshal(map[string]any{"type": "SUBSCRIBE", "subscribe": map[string]any{"framework_info": map[string]any{
		"user": "root", "name": "example", "capabilities": []map[string]string{{"type": "TASK_KILLING_STATE"}}}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(sub))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("subscribe: %s", resp.Status)
	}
	c.streamID = resp.Header.Get("Mesos-Stream-Id")
	rd := bufio.NewReader(resp.Body)
	taskID, launched, killed := "example-"+strconv.FormatInt(time.Now().UnixNano(), 36), false, false
	for {
		// RecordIO: "<length>\n<json>".
		line, err := rd.ReadString('\n')
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(line))
		if err != nil {
			return fmt.Errorf("bad record length %q", line)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return err
		}
		var ev event
		if err := json.Unmarshal(buf, &ev); err != nil {
			return err
		}
		switch ev.Type {
		case "SUBSCRIBED":
			c.frameworkID = ev.Subscribed.FrameworkID.Value
			fmt.Println("subscribed", c.frameworkID)
		case "OFFERS":
			for _, o := range ev.Offers.Offers {
				if launched {
					c.call(ctx, map[string]any{"type": "DECLINE", "decline": map[string]any{"offer_ids": []id{o.ID}}})
					continue
				}
				launched = true
				fmt.Println("launching", taskID, "on", o.Hostname)
				err := c.call(ctx, map[string]any{"type": "ACCEPT", "accept": map[string]any{
					"offer_ids": []id{o.ID},
					"operations": []map[string]any{{"type": "LAUNCH", "launch": map[string]any{"task_infos": []map[string]any{{
						"name": "example", "task_id": id{taskID}, "agent_id": o.AgentID,
						"command": map[string]any{"value": "sleep 600"},
						"resources": []map[string]any{
							{"name": "cpus", "type": "SCALAR", "scalar": map[string]float64{"value": 0.1}},
							{"name": "mem", "type": "SCALAR", "scalar": map[string]float64{"value": 32}}},
					}}}}}}})
				if err != nil {
					return err
				}
			}
		case "UPDATE":
			st := ev.Update.Status
			fmt.Println("update", st.TaskID.Value, st.State, st.Message)
			if len(st.UUID) > 0 {
				if err := c.call(ctx, map[string]any{"type": "ACKNOWLEDGE", "acknowledge": map[string]any{
					"agent_id": st.AgentID, "task_id": st.TaskID, "uuid": st.UUID}}); err != nil {
					return err
				}
			}
			switch st.State {
			case "TASK_RUNNING":
				if !killed {
					killed = true
					if err := c.call(ctx, map[string]any{"type": "KILL", "kill": map[string]any{"task_id": st.TaskID}}); err != nil {
						return err
					}
				}
			case "TASK_KILLED":
				return c.call(ctx, map[string]any{"type": "TEARDOWN"})
			case "TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED":
				return fmt.Errorf("task ended %s: %s", st.State, st.Message)
			}
		case "ERROR":
			return fmt.Errorf("master error: %s", ev.Error.Message)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
