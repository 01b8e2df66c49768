// Package dns is the gateway's DNS server: authoritative for the cluster
// domain with Mesos-DNS's names, forwarding everything else.
//
// A zone is built from a snapshot.Snapshot by the pure function Build (no
// I/O, deterministic, golden-tested) into an immutable map from name to
// records, and swapped in with one atomic pointer store. A query loads the
// pointer once and never takes a lock, so updates never stall queries and
// a query never sees half a zone; a name that exists in both the old and
// the new zone never answers NXDOMAIN in between.
//
// It must not: talk to the master (discovery does), or do any work on the
// query path that belongs in Build.
package dns
