// Package proxy is the gateway's load balancer, the replacement of HAProxy
// driven by marathon-lb: an HTTP and an HTTPS virtual-host listener
// (the certificate picked by SNI) and one TCP listener per service port,
// routing to the running tasks of apps. On Linux the plain HTTP listener
// and the TCP service ports are each served by one edge-triggered epoll
// loop (loop_linux.go, tcploop_linux.go, sharing poller_linux.go); HTTPS,
// and what the HTTP loop does not take, is served by fasthttp, and routes
// to named hosts by a goroutine per TCP connection.
//
// Routes come from a pure function, BuildTable, of a snapshot and the
// apps' labels: marathon-lb's (HAPROXY_GROUP, HAPROXY_{n}_VHOST, _PATH,
// _MODE, _PORT, _BIND_ADDR, _BALANCE, _ENABLED, _REDIRECT_TO_HTTPS,
// _USE_HSTS, _STICKY, _SSL_CERT, _AUTH) and Keel's (KEEL_{n}_WEIGHT,
// _RETRIES, _TIMEOUT_RESPONSE, _PATH_REWRITE, _MAX_CONNS); README.md has
// the reference. A bad label costs only the route it is on. Update builds
// a new table off to the side, attaches pooled backend clients to it and
// swaps it in with one atomic store; a request loads the table once and
// takes no lock. Listeners are reconciled against the table: sockets that
// stay configured are never closed, so there is no reload and no dropped
// connection. In-flight requests to a backend that left the table finish.
//
// Before routing, a request whose framing is ambiguous (Content-Length
// with Transfer-Encoding, conflicting lengths, malformed header names or
// chunk sizes) is refused with 400 and oversized headers with 431, so no
// backend can read it differently from the proxy. WebSocket upgrades are
// tunnelled after the backend's 101.
//
// State that is not configuration lives outside the table, keyed by
// backend address, with the backend's connection pool: in-flight counts
// and passive health (outlier ejection after consecutive connect errors
// or 5xx, shown on /v1/backends). Certificates are watched on disk and
// swapped like the table; a file that stops parsing keeps its last good
// certificate.
//
// It must not: talk to the master, parse labels on the request path, or
// allocate per request where it can be avoided.
package proxy
