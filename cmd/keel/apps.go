package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/apps"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/internal/scopedreg"
	"github.com/keelhq/keel/master"
	"github.com/keelhq/keel/mesosclient"
	"github.com/keelhq/keel/webui"
)

// appsFlags are the flags of keel apps: the apps framework (Marathon) on
// its own against a remote master, with Marathon's flag names.
type appsFlags struct {
	master                     string
	ip, hostname, workDir      string
	port                       int
	frameworkName              string
	localPortMin, localPortMax int
	zk                         string
	zkSessionTimeout           time.Duration
}

func appsFlagSet(c *common, f *appsFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("apps", flag.ContinueOnError)
	c.register(fs)
	fs.StringVar(&f.master, "master", "", "the master: host:5050, a list h1:5050,h2:5050, or zk://host:2181,.../keel (the leader is followed)")
	fs.StringVar(&f.ip, "marathon_ip", "0.0.0.0", "IP address of the Marathon API (with --zk, also what the other instances proxy to: give a routable one)")
	fs.IntVar(&f.port, "marathon_port", 8080, "port of the Marathon API")
	fs.StringVar(&f.hostname, "hostname", "", "hostname the framework registers with (default: this machine's)")
	fs.StringVar(&f.workDir, "work_dir", "/var/lib/keel/apps", "directory of the framework's durable state (apps, versions, task records, framework ID), without --zk")
	fs.StringVar(&f.frameworkName, "framework_name", "marathon", "framework name (Mesos-DNS names are {app}.{framework_name}.mesos)")
	fs.IntVar(&f.localPortMin, "local_port_min", 10000, "lowest service port assigned")
	fs.IntVar(&f.localPortMax, "local_port_max", 20000, "highest service port assigned")
	fs.StringVar(&f.zk, "zk", "", "ZooKeeper URL of the framework's own election and state for HA, e.g. zk://h1:2181,h2:2181,h3:2181/marathon (not the masters' path); default: standalone on --work_dir")
	fs.DurationVar(&f.zkSessionTimeout, "zk_session_timeout", 10*time.Second, "ZooKeeper session timeout: how fast a dead leading instance is replaced")
	return fs
}

// runApps runs the apps framework alone, as Marathon runs beside Mesos:
// it registers with the leading master over the v1 scheduler API (the
// same client the master's built-in framework uses). Standalone, it keeps
// its state in a bbolt store of its own; with --zk, several instances
// elect a leader (as masters do, on their own ZooKeeper path): the leader
// runs the framework on the fenced ZooKeeper store, the others proxy the
// Marathon API to it. Run the masters with --apps=false, or give this one
// another --framework_name.
func runApps(ctx context.Context, args []string) error {
	var c common
	var f appsFlags
	log, err := c.setup(appsFlagSet(&c, &f), args)
	if err != nil {
		return err
	}
	if f.master == "" {
		return fmt.Errorf("--master is required (host:port of a master, a list of them, or zk://host:2181,.../keel)")
	}
	if f.hostname == "" {
		f.hostname, _ = os.Hostname()
	}
	reg := newRegistry()
	g, gctx := errgroup.WithContext(ctx)
	leader, err := followMaster(gctx, g, f.master, log)
	if err != nil {
		return err
	}
	cfg := apps.Config{
		Master: mesosclient.NewSchedulerFor(leader),
		Listen: hostPort(f.ip, f.port), FrameworkName: f.frameworkName, Hostname: f.hostname,
		LocalPortMin: f.localPortMin, LocalPortMax: f.localPortMax,
		Registerer: reg, Gatherer: reg, Logger: log, Version: version, UI: webui.Handler(webui.Apps),
	}
	if f.zk != "" {
		if err := startAppsHA(gctx, g, f, cfg, reg, log); err != nil {
			return err
		}
		return g.Wait()
	}
	store, err := coord.OpenBolt(f.workDir)
	if err != nil {
		return err
	}
	defer store.Close()
	cfg.Store = store
	fw, err := apps.New(gctx, cfg)
	if err != nil {
		return err
	}
	g.Go(func() error { return fw.Run(gctx) })
	return g.Wait()
}

// startAppsHA starts on g the Marathon API front and the campaign: during
// each term this instance leads, the framework runs behind the front on
// the term's fenced store, with metrics that end with the term.
func startAppsHA(ctx context.Context, g *errgroup.Group, f appsFlags, cfg apps.Config, reg *prometheus.Registry, log *slog.Logger) error {
	det, err := coord.NewDetector(f.zk, log)
	if err != nil {
		return fmt.Errorf("--zk: %w", err)
	}
	g.Go(func() error { return det.Run(ctx) })
	el := master.NewZKElector(coord.ElectionConfig{ZK: f.zk, SessionTimeout: f.zkSessionTimeout, Log: log, Registerer: reg}, det, log)
	front := apps.NewFront(func() (string, bool) {
		info, ok := det.Leader()
		if !ok || info.Address == nil {
			return "", false
		}
		host := info.Address.IP
		if host == "" {
			host = info.Address.Hostname
		}
		return "http://" + hostPort(host, info.Address.Port), true
	})
	g.Go(func() error { return serveHTTP(ctx, "marathon API", hostPort(f.ip, f.port), front) })
	// Other instances reach this one's API at the advertised address.
	advertise := f.ip
	if ip := net.ParseIP(f.ip); ip == nil || ip.IsUnspecified() {
		advertise = ""
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	info := mesos.MasterInfo{ID: "apps-" + hex.EncodeToString(id), IP: mesos.IPv4ToUint32(net.ParseIP(advertise)), Port: f.port,
		Hostname: f.hostname, Version: version, Address: &mesos.Address{Hostname: f.hostname, IP: advertise, Port: f.port}}
	g.Go(func() error {
		for {
			term, err := el.Campaign(ctx, info)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("apps election: %w", err)
			}
			log.Info("leading the apps framework")
			scope := scopedreg.New(reg)
			tcfg := cfg
			tcfg.Store, tcfg.Registerer = term.Store, scope
			fw, err := apps.New(term.Ctx, tcfg)
			if err == nil {
				err = fw.RunBehind(term.Ctx, front)
			}
			scope.Close()
			if err != nil && term.Ctx.Err() == nil {
				log.Error("apps framework term ended", "err", err)
			}
			log.Info("standing by")
		}
	})
	return nil
}
