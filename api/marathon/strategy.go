package marathon

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// UnreachableStrategy is an app's unreachableStrategy: what happens to an
// instance whose agent the master can no longer reach. On the wire it is
// either the string "disabled" (never replaced, never expunged) or an
// object {"inactiveAfterSeconds": n, "expungeAfterSeconds": m}.
type UnreachableStrategy struct {
	// Disabled is the "disabled" form; Value holds any other string given,
	// for validation to reject.
	Disabled bool
	Value    string
	// InactiveAfterSeconds: after this long unreachable, a replacement is
	// launched (the instance no longer counts).
	InactiveAfterSeconds *int64 `json:"inactiveAfterSeconds,omitempty"`
	// ExpungeAfterSeconds: after this long unreachable, the instance is
	// forgotten, and killed should it ever come back.
	ExpungeAfterSeconds *int64 `json:"expungeAfterSeconds,omitempty"`
}

// unreachableObject is the object form, without the methods.
type unreachableObject struct {
	InactiveAfterSeconds *int64 `json:"inactiveAfterSeconds,omitempty"`
	ExpungeAfterSeconds  *int64 `json:"expungeAfterSeconds,omitempty"`
}

// MarshalJSON writes "disabled" or the object form.
func (u UnreachableStrategy) MarshalJSON() ([]byte, error) {
	if u.Disabled {
		return []byte(`"disabled"`), nil
	}
	if u.Value != "" {
		return json.Marshal(u.Value)
	}
	return json.Marshal(unreachableObject{InactiveAfterSeconds: u.InactiveAfterSeconds, ExpungeAfterSeconds: u.ExpungeAfterSeconds})
}

// UnmarshalJSON reads either form. A string other than "disabled" is kept
// in Value for validation to report with its path.
func (u *UnreachableStrategy) UnmarshalJSON(b []byte) error {
	*u = UnreachableStrategy{}
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "disabled" {
			u.Disabled = true
		} else {
			u.Value = s
			if s == "" {
				u.Value = `""`
			}
		}
		return nil
	case len(b) > 0 && b[0] == '{':
		var o unreachableObject
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		u.InactiveAfterSeconds, u.ExpungeAfterSeconds = o.InactiveAfterSeconds, o.ExpungeAfterSeconds
		return nil
	}
	return &json.UnmarshalTypeError{Value: "non-object", Type: reflect.TypeOf(u).Elem()}
}

// ReadinessCheck is one of an app's readinessChecks: during a deployment a
// new task counts as ready only once an HTTP GET of path on its port
// named portName answers with one of httpStatusCodesForReady. Marathon
// (here: the apps framework) runs the check itself, not the agent.
type ReadinessCheck struct {
	Name                    string `json:"name,omitempty"`
	Protocol                string `json:"protocol,omitempty"` // HTTP or HTTPS
	Path                    string `json:"path,omitempty"`
	PortName                string `json:"portName,omitempty"`
	IntervalSeconds         *int   `json:"intervalSeconds,omitempty"`
	TimeoutSeconds          *int   `json:"timeoutSeconds,omitempty"`
	HTTPStatusCodesForReady []int  `json:"httpStatusCodesForReady,omitempty"`
	PreserveLastResponse    bool   `json:"preserveLastResponse"`
}

// ReadinessCheckResult is the latest outcome of one readiness check of one
// task, as listed in a deployment's readinessCheckResults.
type ReadinessCheckResult struct {
	Name         string             `json:"name"`
	TaskID       string             `json:"taskId"`
	Ready        bool               `json:"ready"`
	LastResponse *ReadinessResponse `json:"lastResponse,omitempty"`
}

// ReadinessResponse is the last answer to a readiness check, kept when the
// check has preserveLastResponse.
type ReadinessResponse struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType"`
	Body        string `json:"body"`
}
