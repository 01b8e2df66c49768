// Package agentd is the Keel agent: it registers with the master over the
// agent protocol (api/agent), runs the tasks the master sends it, and
// reports their status reliably.
//
// It owns: the connection to the master (subscribe, heartbeat watchdog,
// reconnect with the same agent ID), two containerizers (processes in
// their own process groups; Docker containers through the official Engine
// client, found again after a restart by their keel.* labels), the
// isolation of process tasks, task sandboxes under the work dir
// (WorkDir/sandboxes/<framework>/<task>/<run>/) and their garbage
// collection, and the status update manager (per-task FIFO, at-least-once,
// resent until the master relays the framework's acknowledgement).
//
// Isolation follows Mesos' flags. With cgroups/cpu,cgroups/mem (the
// default where the cgroup hierarchy, v1 or v2, is writable) each process
// task gets its own cgroup under --cgroups_root with CPU shares of
// cpus*1024 (v2: the matching cpu.weight) and a hard memory limit of its
// mem (Mesos' floors: 2 shares, 32 MiB). The process is started behind a
// shell gate and enters its cgroup before the task's command runs; an OOM
// kill in the cgroup kills the whole task and reports TASK_FAILED with
// REASON_CONTAINER_LIMITATION_MEMORY; the cgroup goes when the task ends,
// also after an agent restart (the checkpoint names it). posix/cpu,
// posix/mem enforces nothing. With --switch_user (default) a task whose
// CommandInfo names a user runs as that user (uid, gid, supplementary
// groups; its command health checks too) in a sandbox chowned to it; an
// unknown user fails the task.
//
// The fetcher is Mesos' (CommandInfo.uris; Marathon's uris and fetch):
// before a task's command runs, or its container is created, each URI is
// put into the sandbox, off the event loop and off the agent's lock, the
// task being TASK_STARTING meanwhile. http(s) URIs are downloaded with a
// timeout per URI and a size cap, file:// URIs and absolute paths are
// copied; output_file names the result; executable makes it mode 0755
// and leaves it as it is; otherwise (extract unset or true) .tar, .tar.gz,
// .tgz, .tar.bz2, .zip (the standard library) and .tar.xz (the xz tool)
// are unpacked into the sandbox and a lone .gz is decompressed; the
// archive stays. No archive entry or link may land or point outside the
// sandbox (the writes go through an os.Root); setuid bits are dropped;
// cache is ignored. A failed fetch fails the task with TASK_FAILED,
// REASON_CONTAINER_LAUNCH_FAILED and a message naming the URI (also in
// the sandbox's stderr); a kill while fetching cancels the download
// (TASK_KILLED, REASON_TASK_KILLED_DURING_LAUNCH).
//
// Sandbox GC is Mesos': the sandbox of a finished task is kept at most
// --gc_delay after the task ended (the run directory's mtime), and every
// --disk_watch_interval those older than
// gc_delay * max(0, 1 - gc_disk_headroom - disk usage) are removed. The
// sandbox of a live (or launching) task is never removed.
//
// It must not decide anything about scheduling: it runs what it is told,
// within the resources it advertised, and says what happened.
package agentd
