package agentd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Mesos-native health checks, run by the agent next to the task: HTTP
// (a 2xx or 3xx answer, or one of the listed statuses), TCP (a connect)
// and COMMAND (exit 0). A change of result is reported as TASK_RUNNING
// with healthy set; a task that fails consecutive_failures checks after
// its grace period is killed, as the Mesos executor does.

// Mesos' defaults for unset fields.
const (
	defaultHCInterval = 10 * time.Second
	defaultHCTimeout  = 20 * time.Second
	defaultHCFailures = 3
)

func seconds(v float64, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v * float64(time.Second))
}

// healthLoop checks t until it ends or the agent detaches from it.
func (a *Agent) healthLoop(t *task) {
	defer a.wg.Done()
	hc := t.info.HealthCheck
	interval := seconds(hc.IntervalSeconds, defaultHCInterval)
	timeout := seconds(hc.TimeoutSeconds, defaultHCTimeout)
	grace := seconds(hc.GracePeriodSeconds, 0)
	maxFailures := int(hc.ConsecutiveFailures)
	if maxFailures <= 0 {
		maxFailures = defaultHCFailures
	}
	start := time.Now()
	wait := seconds(hc.DelaySeconds, 0)
	var healthy *bool
	failures := 0
	everHealthy := false
	for {
		select {
		case <-t.done:
			return
		case <-a.detached:
			return
		case <-time.After(wait):
		}
		wait = interval
		err := a.check(t, hc, timeout)
		ok := err == nil
		if ok {
			failures, everHealthy = 0, true
		} else if everHealthy || time.Since(start) >= grace {
			failures++
		} else {
			continue // failures in the grace period do not count
		}
		if healthy == nil || *healthy != ok {
			healthy = &ok
			msg := ""
			if err != nil {
				msg = "health check failed: " + err.Error()
			}
			a.mu.Lock()
			if t.killing {
				a.mu.Unlock()
				return
			}
			a.statusHealth(t, ok, msg)
			a.mu.Unlock()
		}
		if failures >= maxFailures {
			a.log.Warn("task failed its health check; killing it", "task_id", t.info.TaskID.Value, "failures", failures, "err", err)
			a.mu.Lock()
			if !t.killing {
				t.killing = true
				t.killReason = mesos.ReasonHealthCheckStatusUpdated
			}
			a.mu.Unlock()
			a.terminate(t, a.cfg.KillGrace)
			return
		}
	}
}

// check runs one health check.
func (a *Agent) check(t *task, hc *mesos.HealthCheck, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch hc.Type {
	case "TCP":
		if hc.TCP == nil {
			return fmt.Errorf("no tcp port")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(a.cfg.IP, strconv.Itoa(int(hc.TCP.Port))))
		if err != nil {
			return err
		}
		return c.Close()
	case "HTTP":
		if hc.HTTP == nil {
			return fmt.Errorf("no http port")
		}
		scheme := hc.HTTP.Scheme
		if scheme == "" {
			scheme = "http"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s%s", scheme,
			net.JoinHostPort(a.cfg.IP, strconv.Itoa(int(hc.HTTP.Port))), hc.HTTP.Path), nil)
		if err != nil {
			return err
		}
		resp, err := a.checkClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if len(hc.HTTP.Statuses) > 0 {
			for _, s := range hc.HTTP.Statuses {
				if int(s) == resp.StatusCode {
					return nil
				}
			}
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	case "COMMAND":
		if hc.Command == nil || hc.Command.Value == "" {
			return fmt.Errorf("no command")
		}
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", hc.Command.Value)
		cmd.Dir = t.sandbox
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: t.cred} // as the task's user
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("command: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unknown health check type %q", hc.Type)
}
