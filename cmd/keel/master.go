package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/apps"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/master"
	"github.com/keelhq/keel/mesosclient"
	"github.com/keelhq/keel/webui"
)

// masterFlags are the flags of keel master (Mesos' names where Mesos has them).
type masterFlags struct {
	ip, hostname, workDir      string
	port                       int
	allocationInterval         time.Duration
	agentReregisterTimeout     time.Duration
	heartbeat                  time.Duration
	apps                       bool
	appsIP                     string
	appsPort                   int
	frameworkName              string
	localPortMin, localPortMax int
	weights                    string
	roles                      string
	agentPingTimeout           time.Duration
	maxAgentPingTimeouts       int
	offerTimeout               time.Duration
}

func (f *masterFlags) register(fs *flag.FlagSet, ip string) {
	fs.StringVar(&f.ip, "ip", ip, "IP address to listen on and advertise")
	fs.IntVar(&f.port, "port", 5050, "port of the Mesos scheduler and operator APIs")
	fs.StringVar(&f.hostname, "hostname", "", "hostname to advertise (default: the IP)")
	fs.DurationVar(&f.allocationInterval, "allocation_interval", time.Second, "period of batch allocation")
	fs.DurationVar(&f.agentReregisterTimeout, "agent_reregister_timeout", 75*time.Second, "how long a disconnected agent's tasks are kept before they are marked unreachable")
	fs.DurationVar(&f.heartbeat, "heartbeat_interval", 15*time.Second, "period of HEARTBEAT events on every stream")
	fs.BoolVar(&f.apps, "apps", true, "run the built-in apps framework (Marathon API)")
	fs.StringVar(&f.appsIP, "marathon_ip", ip, "IP address of the Marathon API")
	fs.IntVar(&f.appsPort, "marathon_port", 8080, "port of the Marathon API")
	fs.StringVar(&f.frameworkName, "framework_name", "marathon", "name of the apps framework (Mesos-DNS names are {app}.{framework_name}.mesos)")
	fs.IntVar(&f.localPortMin, "local_port_min", 10000, "lowest service port the apps framework assigns")
	fs.IntVar(&f.localPortMax, "local_port_max", 20000, "highest service port the apps framework assigns")
	fs.StringVar(&f.weights, "weights", "", `role weights for fair sharing, e.g. "prod=3,dev=1" (default 1 each)`)
	fs.StringVar(&f.roles, "roles", "", `comma-separated roles frameworks may use besides "*" (default: any valid role)`)
	fs.DurationVar(&f.agentPingTimeout, "agent_ping_timeout", 15*time.Second, "how long to wait for an agent's answer to a ping")
	fs.IntVar(&f.maxAgentPingTimeouts, "max_agent_ping_timeouts", 5, "missed pings after which an agent is taken for partitioned and its tasks unreachable")
	fs.DurationVar(&f.offerTimeout, "offer_timeout", 0, "rescind offers not answered within this time (0: never)")
}

func runMaster(ctx context.Context, args []string) error {
	var c common
	var f masterFlags
	fs := masterFlagSet(&c, &f)
	log, err := c.setup(fs, args)
	if err != nil {
		return err
	}
	reg := newRegistry()
	g, gctx := errgroup.WithContext(ctx)
	if err := startMaster(gctx, g, f, reg, log); err != nil {
		return err
	}
	return g.Wait()
}

func masterFlagSet(c *common, f *masterFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	c.register(fs)
	f.register(fs, "0.0.0.0")
	fs.StringVar(&f.workDir, "work_dir", "/var/lib/keel", "directory of the master's durable state")
	return fs
}

// startMaster opens the store and starts the master and, with --apps, the
// apps framework, on g.
func startMaster(ctx context.Context, g *errgroup.Group, f masterFlags, reg *prometheus.Registry, log *slog.Logger) error {
	weights, err := master.ParseWeights(f.weights)
	if err != nil {
		return err
	}
	var roles []string
	for _, r := range strings.Split(f.roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			if err := master.ValidateRole(r); err != nil {
				return fmt.Errorf("--roles: %w", err)
			}
			roles = append(roles, r)
		}
	}
	store, err := coord.OpenBolt(f.workDir)
	if err != nil {
		return err
	}
	ready := make(chan string, 1)
	// The store closes once the master and the apps framework both stopped.
	var users sync.WaitGroup
	users.Add(2)
	g.Go(func() error {
		users.Wait()
		return store.Close()
	})
	g.Go(func() error {
		defer users.Done()
		advertise := f.ip
		if ip := net.ParseIP(f.ip); ip == nil || ip.IsUnspecified() {
			advertise = ""
		}
		return master.Run(ctx, master.Config{
			Listen: hostPort(f.ip, f.port), IP: advertise, Hostname: f.hostname, Store: store,
			AllocationInterval: f.allocationInterval, AgentReregisterTimeout: f.agentReregisterTimeout,
			HeartbeatInterval: f.heartbeat, Version: version, Weights: weights, Roles: roles,
			AgentPingTimeout: f.agentPingTimeout, MaxAgentPingTimeouts: f.maxAgentPingTimeouts, OfferTimeout: f.offerTimeout, Extra: webui.Handler(webui.Cluster), Registerer: reg, Gatherer: reg, Logger: log,
			OnListen: func(a net.Addr) { ready <- a.(*net.TCPAddr).String() },
		})
	})
	if !f.apps {
		users.Done()
		return nil
	}
	g.Go(func() error {
		defer users.Done()
		var addr string
		select {
		case addr = <-ready:
		case <-ctx.Done():
			return nil
		}
		host, port, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		hostname := f.hostname
		if hostname == "" {
			hostname, _ = os.Hostname()
		}
		return apps.Run(ctx, apps.Config{
			Master: mesosclient.NewScheduler("http://" + net.JoinHostPort(host, port)), Store: store,
			Listen: hostPort(f.appsIP, f.appsPort), FrameworkName: f.frameworkName, Hostname: hostname,
			LocalPortMin: f.localPortMin, LocalPortMax: f.localPortMax,
			Registerer: reg, Gatherer: reg, Logger: log, Version: version, UI: webui.Handler(webui.Apps),
		})
	})
	return nil
}
