// Package dns is the gateway's DNS server: authoritative for the cluster
// domain with Mesos-DNS's names, forwarding everything else, with
// Mesos-DNS's HTTP API plus /v1/watch.
//
// A zone is built from a snapshot.Snapshot by the pure function Build (no
// I/O, deterministic, golden-tested) into an immutable map from name to
// records, and swapped in with one atomic pointer store. A query loads the
// pointer once and never takes a lock shared with the updater, so updates
// never stall queries and a query never sees half a zone; a name that
// exists in both the old and the new zone never answers NXDOMAIN in
// between.
//
// UDP is served by its own loop (many packets per system call). The
// common query takes the fast path: its reply is packed once per zone and
// question (in several answer orders) into a cache that belongs to the
// zone, and later queries only copy it and patch the ID, two flag bits and
// the question's case; unknown names get NXDOMAIN from a template. Every
// other query takes the general path (miekg/dns messages), as TCP does;
// a differential test holds the two to the same answers. Names outside the
// domain go to the zone resolvers of their zone, else to the resolvers,
// and only for clients in RecursionAllowed. Responses over UDP may be
// rate-limited per client prefix. /v1/watch streams each new zone's
// changes as Server-Sent Events, computing diffs only while someone
// watches and dropping watchers that fall behind.
//
// It must not: talk to the master (discovery does), do any work on the
// query path that belongs in Build, or let a slow upstream or a slow
// watcher hold up queries or updates.
//
// README.md has the diagram and the reference of names, flags and metrics.
package dns
