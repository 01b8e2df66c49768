package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/agentd"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/mesosclient"
)

// agentFlags are the flags of keel agent (Mesos agent names).
type agentFlags struct {
	master, workDir, ip, hostname string
	port                          int
	resources, attributes         string
	killGrace, killingDrain       time.Duration
	recover                       string
	containerizers, dockerSocket  string
	dockerAllowPrivileged         bool
	isolation, cgroupsHierarchy   string
	cgroupsRoot                   string
	noSwitchUser                  bool // --switch_user=false; the zero value is Mesos' default
	gcDelay, diskWatchInterval    time.Duration
	gcDiskHeadroom                float64
}

func (f *agentFlags) register(fs *flag.FlagSet, ip string) {
	fs.StringVar(&f.ip, "ip", ip, "IP address tasks on this agent are reachable at")
	fs.IntVar(&f.port, "port", 5051, "port of the agent's HTTP endpoints")
	fs.StringVar(&f.hostname, "hostname", "", "hostname to report (default: the machine's)")
	fs.StringVar(&f.resources, "resources", "", `resources to offer, e.g. "cpus:4;mem:8192;disk:10000;ports:[31000-32000]" (default: detected, ports [31000-32000])`)
	fs.StringVar(&f.attributes, "attributes", "", `attributes, e.g. "rack:r1;zone:a"`)
	fs.DurationVar(&f.killGrace, "executor_shutdown_grace_period", 3*time.Second, "time between SIGTERM and SIGKILL when a task has no kill policy")
	fs.DurationVar(&f.killingDrain, "task_killing_drain", time.Second, "time between TASK_KILLING and SIGTERM, so gateways drain a task before it stops")
	fs.StringVar(&f.recover, "recover", "reconnect", "at start, re-attach to the tasks of a previous run (reconnect) or kill them (cleanup)")
	fs.StringVar(&f.containerizers, "containerizers", "mesos", `comma-separated containerizers: "mesos" (processes), "docker,mesos" also runs Docker tasks`)
	fs.StringVar(&f.dockerSocket, "docker_socket", "/var/run/docker.sock", "the Docker Engine's socket")
	fs.BoolVar(&f.dockerAllowPrivileged, "docker_allow_privileged", false, "let Docker tasks run privileged containers")
	fs.StringVar(&f.isolation, "isolation", "", `isolators of process tasks: "cgroups/cpu,cgroups/mem" (a cgroup per task with CPU shares and a hard memory limit) or "posix/cpu,posix/mem" (no limits) (default: cgroups/cpu,cgroups/mem when the cgroup hierarchy is writable, else posix/cpu,posix/mem)`)
	fs.StringVar(&f.cgroupsHierarchy, "cgroups_hierarchy", "/sys/fs/cgroup", "where cgroups are mounted (v1 or v2, detected)")
	fs.StringVar(&f.cgroupsRoot, "cgroups_root", "keel", "cgroup under which each task's cgroup is created")
	fs.Var(notBool{&f.noSwitchUser}, "switch_user", "run a task as the user its command names (it fails if the user does not exist); false runs every task as the agent's user (default true)")
	fs.DurationVar(&f.gcDelay, "gc_delay", 7*24*time.Hour, "longest time the sandbox of a finished task is kept (less as the disk fills, see --gc_disk_headroom)")
	fs.Float64Var(&f.gcDiskHeadroom, "gc_disk_headroom", 0.1, "share of the work dir's disk to keep free, in (0, 1]: sandboxes older than gc_delay * max(0, 1 - gc_disk_headroom - disk usage) are removed")
	fs.DurationVar(&f.diskWatchInterval, "disk_watch_interval", time.Minute, "how often disk usage is checked and old sandboxes removed")
}

func (f *agentFlags) config(leader mesosclient.Resolver, reg *prometheus.Registry, log *slog.Logger) (agentd.Config, error) {
	cfg := agentd.Config{Leader: leader, WorkDir: f.workDir, Hostname: f.hostname, IP: f.ip,
		Listen: hostPort(f.ip, f.port), KillGrace: f.killGrace, KillingDrain: f.killingDrain, Registerer: reg, Gatherer: reg, Logger: log,
		DockerSocket: f.dockerSocket, DockerAllowPrivileged: f.dockerAllowPrivileged,
		Isolation: f.isolation, CgroupsHierarchy: f.cgroupsHierarchy, CgroupsRoot: f.cgroupsRoot, NoSwitchUser: f.noSwitchUser,
		GCDelay: f.gcDelay, GCDiskHeadroom: f.gcDiskHeadroom, DiskWatchInterval: f.diskWatchInterval}
	for _, c := range strings.Split(f.containerizers, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cfg.Containerizers = append(cfg.Containerizers, c)
		}
	}
	if f.port == 0 {
		cfg.Listen = ""
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	switch f.recover {
	case "reconnect":
	case "cleanup":
		cfg.Cleanup = true
	default:
		return cfg, fmt.Errorf("--recover: want reconnect or cleanup, got %q", f.recover)
	}
	if f.resources != "" {
		rs, err := mesos.ParseResources(f.resources)
		if err != nil {
			return cfg, err
		}
		cfg.Resources = rs
	}
	if f.attributes != "" {
		as, err := mesos.ParseAttributes(f.attributes)
		if err != nil {
			return cfg, err
		}
		cfg.Attributes = as
	}
	return cfg, nil
}

func runAgent(ctx context.Context, args []string) error {
	var c common
	var f agentFlags
	fs := agentFlagSet(&c, &f)
	log, err := c.setup(fs, args)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	leader, err := followMaster(gctx, g, f.master, log)
	if err != nil {
		return err
	}
	cfg, err := f.config(leader, newRegistry(), log)
	if err != nil {
		return err
	}
	g.Go(func() error { return runAgentd(gctx, cfg) })
	return g.Wait()
}

func agentFlagSet(c *common, f *agentFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	c.register(fs)
	f.register(fs, "127.0.0.1")
	fs.StringVar(&f.master, "master", "", "master to register with: host:port, host:port,host:port, or zk://host:2181,.../keel")
	fs.StringVar(&f.workDir, "work_dir", "/var/lib/keel/agent", "directory of sandboxes and agent state")
	return fs
}

// notBool is a boolean flag stored negated, so that the zero value of the
// field is the flag's default of true.
type notBool struct{ not *bool }

func (b notBool) String() string {
	if b.not == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.not)
}

func (b notBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.not = !v
	return nil
}

func (b notBool) IsBoolFlag() bool { return true }

func runAgentd(ctx context.Context, cfg agentd.Config) error { return agentd.Run(ctx, cfg) }
