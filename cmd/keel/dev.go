package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/mesosclient"
)

// runDev runs master, apps framework, agent and gateway in one process,
// with loopback addresses and state under --work_dir.
func runDev(ctx context.Context, args []string) error {
	var (
		c  common
		mf masterFlags
		af agentFlags
		gf gatewayFlags
	)
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	c.register(fs)
	mf.register(fs, "127.0.0.1")
	gf.register(fs, true)
	workDir := fs.String("work_dir", defaultWorkDir("dev"), "directory of all state (it survives restarts)")
	fs.IntVar(&af.port, "agent_port", 5051, "port of the agent's HTTP endpoints")
	fs.StringVar(&af.resources, "resources", "", `agent resources (default: detected, ports [31000-32000])`)
	fs.StringVar(&af.attributes, "attributes", "", `agent attributes, e.g. "rack:r1"`)
	fs.DurationVar(&af.killingDrain, "task_killing_drain", time.Second, "time between TASK_KILLING and SIGTERM, so the gateway drains a task before it stops")
	log, err := c.setup(fs, args)
	if err != nil {
		return err
	}
	mf.workDir = filepath.Join(*workDir, "master")
	af.workDir = filepath.Join(*workDir, "agent")
	gf.workDir = filepath.Join(*workDir, "gateway")
	af.ip, af.hostname = mf.ip, mf.hostname
	if af.hostname == "" {
		af.hostname = "localhost"
	}
	masterAddr := hostPort(mf.ip, mf.port)
	url := "http://" + masterAddr
	reg := newRegistry()
	af.recover = "reconnect"
	acfg, err := af.config(mesosclient.Static(url), reg, log)
	if err != nil {
		return err
	}
	// keel dev leaves nothing running when it stops.
	acfg.KillTasksOnExit = true
	g, gctx := errgroup.WithContext(ctx)
	if err := startMaster(gctx, g, mf, reg, log); err != nil {
		return err
	}
	g.Go(func() error { return runAgentd(gctx, acfg) })
	if err := startGateway(gctx, g, gf, mesosclient.Static(url), nil, reg, log); err != nil {
		return err
	}
	fmt.Printf(`keel dev %s: state in %s
  Mesos API     %s   (cluster UI: %s/)
  Marathon API  http://%s   (apps UI: http://%s/ui/)
  DNS           %s  (dig @%s -p %s leader.%s)
  HTTP proxy    http://%s
  Gateway       http://%s/  (UI)  /metrics  /v1/routes  /v1/enumerate
Stop with Ctrl-C.
`, version, *workDir, url, url, hostPort(mf.appsIP, mf.appsPort), hostPort(mf.appsIP, mf.appsPort), gf.dnsAddr, host(gf.dnsAddr), port(gf.dnsAddr), gf.domain, gf.httpAddr, gf.adminAddr)
	err = g.Wait()
	log.Info("keel dev stopped")
	return err
}

func host(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
