// Package agentd is the Keel agent: it registers with the master over the
// agent protocol (api/agent), runs the tasks the master sends it, and
// reports their status reliably.
//
// It owns: the connection to the master (subscribe, heartbeat watchdog,
// reconnect with the same agent ID), two containerizers (processes in
// their own process groups and cgroup-free sandboxes; Docker containers
// through the official Engine client, found again after a restart by
// their keel.* labels), task sandboxes
// under the work dir, and the status update manager (per-task FIFO,
// at-least-once, resent until the master relays the framework's
// acknowledgement).
//
// It must not decide anything about scheduling: it runs what it is told,
// within the resources it advertised, and says what happened.
package agentd
