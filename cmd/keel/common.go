package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/configs"
	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/mesosclient"
)

// common holds the flags every daemon has.
type common struct {
	config    string
	logLevel  string
	logFormat string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "YAML file of flag values (keys are flag names; command-line flags win)")
	fs.StringVar(&c.logLevel, "log_level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log_format", "text", "log format: text or json")
}

// parse parses args, applies the config file, and checks for stray
// arguments.
func (c *common) parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Fprintf(os.Stdout, "Usage of keel %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.config != "" {
		if err := configs.Apply(fs, c.config); err != nil {
			return err
		}
	}
	return nil
}

// setup parses args into fs (config file included) and returns the logger.
func (c *common) setup(fs *flag.FlagSet, args []string) (*slog.Logger, error) {
	if err := c.parse(fs, args); err != nil {
		return nil, err
	}
	return c.logger()
}

func (c *common) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log_format: want text or json, got %q", c.logFormat)
}

// newRegistry returns a metrics registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// hostPort joins an IP and port flag pair into a listen address.
func hostPort(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }

// followMaster turns a --master value into a Resolver of the leading
// master: one host:port (or URL) is used as it is (a standby redirects to
// the leader); a list "h1:5050,h2:5050" or "zk://h1:2181,.../keel" starts
// a coord.Detector on g that follows the leader.
func followMaster(ctx context.Context, g *errgroup.Group, v string, log *slog.Logger) (mesosclient.Resolver, error) {
	r, _, err := followMasterDetector(ctx, g, v, log)
	return r, err
}

// followMasterDetector is followMaster that also returns the detector it
// started (nil for a single master).
func followMasterDetector(ctx context.Context, g *errgroup.Group, v string, log *slog.Logger) (mesosclient.Resolver, *coord.Detector, error) {
	if v == "" {
		return nil, nil, errors.New("--master is required (host:port of a master, a list of them, or zk://host:2181,.../keel)")
	}
	if !strings.HasPrefix(v, "zk://") && !strings.Contains(v, ",") {
		if !strings.Contains(v, "://") {
			v = "http://" + v
		}
		return mesosclient.Static(strings.TrimRight(v, "/")), nil, nil
	}
	det, err := coord.NewDetector(v, log)
	if err != nil {
		return nil, nil, fmt.Errorf("--master: %w", err)
	}
	g.Go(func() error { return det.Run(ctx) })
	return det.LeaderURL, det, nil
}

// defaultWorkDir is where keel dev keeps its state between runs.
func defaultWorkDir(name string) string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".keel", name)
	}
	return filepath.Join(os.TempDir(), "keel-"+name)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
