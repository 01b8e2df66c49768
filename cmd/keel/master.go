package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/apps"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/internal/scopedreg"
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
	zk                         string
	quorum                     int
	zkSessionTimeout           time.Duration
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
	fs.StringVar(&f.zk, "zk", "", "ZooKeeper URL for HA, zk://host1:2181,host2:2181,host3:2181/keel (default: standalone on --work_dir)")
	fs.IntVar(&f.quorum, "quorum", 0, "masters that must be in the election for any to lead (a majority of the masters, e.g. 2 of 3)")
	fs.DurationVar(&f.zkSessionTimeout, "zk_session_timeout", 10*time.Second, "ZooKeeper session timeout: how fast a dead leader is replaced")
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

// startMaster starts on g the master (standalone on its bbolt store, or
// one of an HA set with --zk) and the Marathon API front, behind which
// the apps framework runs during every term this master leads.
func startMaster(ctx context.Context, g *errgroup.Group, f masterFlags, reg *prometheus.Registry, log *slog.Logger) error {
	weights, err := master.ParseWeights(f.weights)
	if err != nil {
		return err
	}
	var roles []string
	for _, r := range splitList(f.roles) {
		if err := allocator.ValidRole(r); err != nil {
			return fmt.Errorf("--roles: %w", err)
		}
		roles = append(roles, r)
	}
	advertise := f.ip
	if ip := net.ParseIP(f.ip); ip == nil || ip.IsUnspecified() {
		advertise = ""
	}
	cfg := master.Config{
		Listen: hostPort(f.ip, f.port), IP: advertise, Hostname: f.hostname,
		AllocationInterval: f.allocationInterval, AgentReregisterTimeout: f.agentReregisterTimeout,
		HeartbeatInterval: f.heartbeat, Version: version, Weights: weights, Roles: roles,
		AgentPingTimeout: f.agentPingTimeout, MaxAgentPingTimeouts: f.maxAgentPingTimeouts, OfferTimeout: f.offerTimeout,
		Extra: webui.Handler(webui.Cluster), Registerer: reg, Gatherer: reg, Logger: log,
	}
	// Where the Marathon API of the leader is: the leader's IP and this
	// node's --marathon_port (the classic layout runs every node alike).
	leaderAPI := func() (string, bool) { return "", false }
	var closeStore func() error
	if f.zk != "" {
		det, err := coord.NewDetector(f.zk, log)
		if err != nil {
			return fmt.Errorf("--zk: %w", err)
		}
		g.Go(func() error { return det.Run(ctx) })
		cfg.Elector = master.NewZKElector(coord.ElectionConfig{ZK: f.zk, Quorum: f.quorum, SessionTimeout: f.zkSessionTimeout,
			Log: log, Registerer: reg}, det, log)
		leaderAPI = func() (string, bool) {
			info, ok := det.Leader()
			if !ok || info.Address == nil {
				return "", false
			}
			return "http://" + hostPort(info.Address.IP, f.appsPort), true
		}
	} else {
		store, err := coord.OpenBolt(f.workDir)
		if err != nil {
			return err
		}
		cfg.Store, closeStore = store, store.Close
	}
	var local atomic.Value // the master's own URL, known once it listens
	cfg.OnListen = func(a net.Addr) {
		host, port, _ := net.SplitHostPort(a.String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		local.Store("http://" + net.JoinHostPort(host, port))
	}
	front := apps.NewFront(leaderAPI)
	if f.zk == "" {
		front.WaitLocal = 10 * time.Second // the framework starts with the master
	}
	if f.apps {
		hostname := f.hostname
		if hostname == "" {
			hostname, _ = os.Hostname()
		}
		cfg.OnTerm = func(ctx context.Context, store master.Store) error {
			// The framework's metrics live as long as the term.
			scope := scopedreg.New(reg)
			defer scope.Close()
			fw, err := apps.New(ctx, apps.Config{
				Master: mesosclient.NewScheduler(local.Load().(string)), Store: store,
				Listen: hostPort(f.appsIP, f.appsPort), FrameworkName: f.frameworkName, Hostname: hostname,
				LocalPortMin: f.localPortMin, LocalPortMax: f.localPortMax,
				Registerer: scope, Gatherer: reg,
				Logger: log, Version: version, UI: webui.Handler(webui.Apps),
			})
			if err != nil {
				return err
			}
			return fw.RunBehind(ctx, front)
		}
		g.Go(func() error { return serveHTTP(ctx, "marathon API", hostPort(f.appsIP, f.appsPort), front) })
	}
	g.Go(func() error {
		err := master.Run(ctx, cfg)
		if closeStore != nil {
			if cerr := closeStore(); err == nil {
				err = cerr
			}
		}
		return err
	})
	return nil
}
