// Command keel is the single binary of the Keel cluster platform:
//
//	keel dev       master, apps API, agent and gateway in one process
//	keel master    a master (with the built-in apps framework)
//	keel apps      the apps framework alone, against a remote master
//	keel agent     an agent that runs tasks
//	keel gateway   DNS and HTTP/TCP proxy for one node
//	keel version   print the version
//
// This package only wires: it parses flags and config files, builds each
// component's config, runs them under one signal-aware context and exits
// non-zero with one readable line when something fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `keel: one binary for a Mesos + Marathon + Mesos-DNS + marathon-lb cluster.

Usage:
  keel dev      [flags]   run master, apps API, agent and gateway in one process
  keel master   [flags]   run a master (Mesos API :5050, Marathon API :8080)
  keel agent    [flags]   run an agent
  keel gateway  [flags]   run a node's DNS server and HTTP/TCP proxy
  keel apps     [flags]   run the apps framework (Marathon API :8080) alone against a master
  keel version            print the version

Run 'keel <command> --help' for a command's flags. Every flag can also be
set in a YAML file given with --config (keys are flag names).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "dev":
		err = runDev(ctx, args)
	case "master":
		err = runMaster(ctx, args)
	case "agent":
		err = runAgent(ctx, args)
	case "gateway":
		err = runGateway(ctx, args)
	case "apps":
		err = runApps(ctx, args)
	case "version", "--version", "-version":
		fmt.Println("keel", version)
	case "help", "--help", "-h", "-help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "keel: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "keel %s: %v\n", cmd, err)
		os.Exit(1)
	}
}
