package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/keelhq/keel/coord"
	"github.com/keelhq/keel/discovery"
	"github.com/keelhq/keel/dns"
	"github.com/keelhq/keel/mesosclient"
	"github.com/keelhq/keel/proxy"
	"github.com/keelhq/keel/webui"
)

// gatewayFlags are the flags of keel gateway (Mesos-DNS and marathon-lb
// names where they exist).
type gatewayFlags struct {
	master, workDir              string
	dnsAddr, httpAddr, adminAddr string
	httpsAddr, sslCertsDir       string
	httpsDefault                 string // httpsAddr's default: optional to bind
	domain, group, serviceBind   string
	resolvers, recursionAllowed  string
	zoneResolvers, ipSources     string
	rateLimit, rateLimitSlip     int
	healthyOnly, enforceRFC952   bool
	ttl                          uint
	routesFile                   string        // static routes: the routes section of this YAML file
	httpEngine                   string        // fasthttp or loop
	tcpEngine                    string        // go or loop
	tcpIdle, udpIdle             time.Duration // service port idle timeouts
}

func (f *gatewayFlags) register(fs *flag.FlagSet, loopback bool) {
	dnsAddr, httpAddr, httpsAddr, adminAddr, bind := ":53", ":80", ":443", ":9090", "0.0.0.0"
	if loopback {
		dnsAddr, httpAddr, httpsAddr, adminAddr, bind = "127.0.0.1:8053", "127.0.0.1:8000", "127.0.0.1:8443", "127.0.0.1:9090", "127.0.0.1"
	}
	fs.StringVar(&f.dnsAddr, "dns_addr", dnsAddr, "DNS listen address (UDP and TCP)")
	fs.StringVar(&f.httpAddr, "http_addr", httpAddr, "HTTP virtual-host proxy listen address")
	f.httpsDefault = httpsAddr
	fs.StringVar(&f.httpEngine, "http_engine", proxy.DefaultHTTPEngine, `what serves --http_addr: "loop" (Linux): an epoll loop that reads only after readiness, for plain requests, handing the others to fasthttp; or "fasthttp" for every request`)
	fs.StringVar(&f.tcpEngine, "tcp_engine", proxy.DefaultTCPEngine, `what serves the TCP service ports: "loop" (Linux): one epoll loop for all of them, splicing bulk transfers; or "go": a goroutine pair per connection`)
	fs.StringVar(&f.httpsAddr, "https_addr", httpsAddr, `HTTPS virtual-host proxy listen address, certificate picked by SNI ("" = none)`)
	fs.StringVar(&f.sslCertsDir, "ssl_certs_dir", "", "directory of HTTPS certificates: every *.pem holds a certificate chain and its key; default.pem is served when no name matches (watched for changes)")
	fs.StringVar(&f.adminAddr, "admin_addr", adminAddr, "admin address: /metrics, DNS HTTP API (/v1/hosts, ...), routes (/v1/routes), backend health (/v1/backends)")
	fs.StringVar(&f.serviceBind, "service_bind", bind, "IP the per-service-port TCP listeners bind to")
	fs.StringVar(&f.domain, "domain", "mesos", "DNS domain of the cluster")
	fs.UintVar(&f.ttl, "ttl", 60, "TTL of DNS records, in seconds")
	fs.StringVar(&f.group, "group", "external", `marathon-lb group (HAPROXY_GROUP) this gateway serves; "*" for all`)
	fs.StringVar(&f.resolvers, "resolvers", "", "comma-separated upstream DNS servers (ip:port) for names outside the domain (default: the nameservers of /etc/resolv.conf)")
	fs.StringVar(&f.recursionAllowed, "recursion_allowed", "", "comma-separated CIDRs of clients whose outside names are forwarded (default: loopback and private ranges)")
	fs.StringVar(&f.zoneResolvers, "zone_resolvers", "", `comma-separated zone=ip:port pairs (a zone named twice gets both servers): names under a zone go to its servers, e.g. "consul=127.0.0.1:8600" (Mesos-DNS zoneResolvers)`)
	fs.StringVar(&f.ipSources, "ip_sources", "netinfo,mesos,host", "where a task's A record comes from, in order: netinfo (container IPs), mesos, host (the agent's IP) (Mesos-DNS IPSources)")
	fs.BoolVar(&f.enforceRFC952, "enforce_rfc952", false, "DNS names of tasks and frameworks follow RFC 952 (start with a letter, at most 24 characters) instead of RFC 1123 (Mesos-DNS EnforceRFC952)")
	fs.IntVar(&f.rateLimit, "dns_rate_limit", 0, "UDP responses per second per client /24 (IPv6 /56); 0 turns rate limiting off")
	fs.IntVar(&f.rateLimitSlip, "dns_rate_limit_slip", 2, "with --dns_rate_limit, every Nth limited response is sent truncated instead of dropped (0: drop all)")
	fs.BoolVar(&f.healthyOnly, "dns_healthy_only", true, "route and resolve only healthy tasks when they have health checks")
	fs.StringVar(&f.routesFile, "routes_file", "", "YAML file whose routes section holds static routes (http vhosts, tcp and udp service ports to fixed backends), merged with the cluster's and followed for changes (default: the --config file)")
	fs.DurationVar(&f.tcpIdle, "tcp_idle_timeout", time.Hour, "close a service port TCP connection that moved no byte either way for this long (marathon-lb's timeout tunnel; negative: never)")
	fs.DurationVar(&f.udpIdle, "udp_idle_timeout", time.Minute, "end a UDP service port client's session, and its upstream socket, after this long without a datagram")
}

// startGateway starts discovery, DNS, proxy and the admin server on g.
func startGateway(ctx context.Context, g *errgroup.Group, f gatewayFlags, leader mesosclient.Resolver, det *coord.Detector, reg *prometheus.Registry, log *slog.Logger) error {
	if err := os.MkdirAll(f.workDir, 0o755); err != nil {
		return fmt.Errorf("gateway: work dir: %w", err)
	}
	dcfg := discovery.Config{Leader: leader, StateFile: filepath.Join(f.workDir, "snapshot.json"), Registerer: reg, Logger: log}
	if det != nil {
		dcfg.Masters = det.Masters
	}
	disc := discovery.New(dcfg)
	if det != nil {
		// A master joining or leaving changes master.mesos.
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-det.Changed():
					disc.Touch()
				}
			}
		})
	}
	resolvers := splitList(f.resolvers)
	if len(resolvers) == 0 {
		resolvers = dns.SystemResolvers("/etc/resolv.conf")
	}
	var allowed []*net.IPNet
	if f.recursionAllowed != "" {
		var err error
		if allowed, err = dns.ParseNets(splitList(f.recursionAllowed)); err != nil {
			return fmt.Errorf("--recursion_allowed: %w", err)
		}
	}
	zones, err := dns.ParseZoneResolvers(splitList(f.zoneResolvers))
	if err != nil {
		return fmt.Errorf("--zone_resolvers: %w", err)
	}
	for _, src := range splitList(f.ipSources) {
		if src != "netinfo" && src != "mesos" && src != "host" {
			return fmt.Errorf("--ip_sources: unknown source %q (want netinfo, mesos or host)", src)
		}
	}
	d, err := dns.New(dns.Config{IPSources: splitList(f.ipSources), EnforceRFC952: f.enforceRFC952, ZoneResolvers: zones, RateLimit: f.rateLimit, RateLimitSlip: f.rateLimitSlip, Addr: f.dnsAddr, Domain: f.domain, TTL: uint32(f.ttl), HealthyOnly: f.healthyOnly,
		Resolvers: resolvers, RecursionAllowed: allowed, Registerer: reg, Logger: log, Version: version})
	if err != nil {
		return err
	}
	p, err := proxy.New(proxy.Config{HTTPAddr: f.httpAddr, HTTPEngine: f.httpEngine, TCPEngine: f.tcpEngine, HTTPSAddr: f.httpsAddr, SSLCertsDir: f.sslCertsDir,
		// A gateway without the right to bind :443 (or a second keel dev
		// on one machine) still serves HTTP unless HTTPS was asked for.
		HTTPSOptional: f.httpsAddr == f.httpsDefault, ServiceBind: f.serviceBind, Group: f.group,
		HealthyOnly: f.healthyOnly, TCPIdleTimeout: f.tcpIdle, UDPIdleTimeout: f.udpIdle, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	disc.OnUpdate(d.Update)
	if f.routesFile != "" {
		st, err := p.NewStatic(f.routesFile)
		if err != nil {
			return fmt.Errorf("--routes_file: %w", err)
		}
		disc.OnUpdate(st.Update)
		g.Go(func() error {
			// Without the watcher the routes still serve; they only stop
			// following the file.
			if err := st.Run(ctx); err != nil {
				log.Error("static routes will not be reloaded", "err", err)
			}
			return nil
		})
	} else {
		disc.OnUpdate(p.Update)
	}
	admin := http.NewServeMux()
	admin.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	admin.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("OK\n")) })
	d.RegisterHTTP(admin)
	p.RegisterAdmin(admin)
	admin.Handle("/", webui.Handler(webui.Gateway))
	g.Go(func() error { return disc.Run(ctx) })
	g.Go(func() error { return d.Run(ctx) })
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return serveHTTP(ctx, "gateway admin", f.adminAddr, admin) })
	return nil
}

func runGateway(ctx context.Context, args []string) error {
	var c common
	var f gatewayFlags
	fs := gatewayFlagSet(&c, &f)
	log, err := c.setup(fs, args)
	if err != nil {
		return err
	}
	if f.routesFile == "" {
		f.routesFile = c.config // its routes section, if any
	}
	g, gctx := errgroup.WithContext(ctx)
	leader, det, err := followMasterDetector(gctx, g, f.master, log)
	if err != nil {
		return err
	}
	if err := startGateway(gctx, g, f, leader, det, newRegistry(), log); err != nil {
		return err
	}
	return g.Wait()
}

func gatewayFlagSet(c *common, f *gatewayFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	c.register(fs)
	f.register(fs, false)
	fs.StringVar(&f.master, "master", "", "master to follow: host:port, host:port,host:port, or zk://host:2181,.../keel")
	fs.StringVar(&f.workDir, "work_dir", "/var/lib/keel/gateway", "directory of the gateway's saved state")
	return fs
}
