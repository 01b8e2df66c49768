// Package coord owns the durable state of the masters and of the apps
// framework, and leader election among the masters.
//
// Two back ends keep the same Get/Put/Delete/List/Close methods:
//
//   - Bolt, for a standalone master: an embedded bbolt file under the
//     master's work dir whose writes are fsynced before they are
//     acknowledged.
//   - ZKStore, for the HA trio (--zk zk://n1:2181,n2:2181,n3:2181/keel):
//     the state lives in ZooKeeper under <path>/state, written only by the
//     leader. Every write is a multi-op that checks the leader's election
//     node, so a deposed leader's writes fail with ErrNotLeader instead of
//     overwriting its successor's. A store belongs to one Term.
//
// Keys are flat strings ("apps//prod/web", "framework/id"); callers choose
// their own prefixes. coord knows nothing about what the values mean.
//
// Election (Campaign) uses the layout of Mesos masters, so Mesos' own leader
// detectors (Mesos-DNS, frameworks, marathon-lb) follow Keel's masters: each
// master holds an EPHEMERAL|SEQUENTIAL node <path>/json.info_NNNNNNNNNN with
// its MasterInfo JSON, and the lowest sequence number leads (given Quorum
// contenders). A Term's context ends the moment leadership may have ended:
// session expiry, connection loss nearly as long as the session timeout,
// quorum loss, deletion of the node, or a freeze of the process noticed by a
// wall-clock watchdog. Detector follows the leader from ZooKeeper or from a
// list of masters (their /master/redirect).
//
// coord must not know about masters' or apps' types beyond MasterInfo, and
// must not decide anything for them: it reports leadership, the master acts.
// Every ZooKeeper request is bounded by a context and by the client
// library's own timeouts.
package coord
