// Package proxy is the gateway's load balancer, the replacement of HAProxy
// driven by marathon-lb: an HTTP virtual-host listener (fasthttp) and one
// TCP listener per service port, routing to the running tasks of apps.
//
// Routes come from a pure function, BuildTable, of a snapshot and the
// apps' marathon-lb labels (HAPROXY_GROUP, HAPROXY_{n}_VHOST, _PATH,
// _MODE, _PORT, _BIND_ADDR, _BALANCE, _ENABLED). Update builds a new table
// off to the side, attaches pooled backend clients to it and swaps it in
// with one atomic store; a request loads the table once and takes no lock.
// Listeners are reconciled against the table: sockets that stay
// configured are never closed, so there is no reload and no dropped
// connection. In-flight requests to a backend that left the table finish.
//
// It must not: talk to the master, or parse labels on the request path.
package proxy
