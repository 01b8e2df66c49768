// Package api is the bottom of Keel's dependency graph: the wire types that
// cross process boundaries. It imports nothing of Keel and nothing outside the
// standard library.
//
// The sub-packages split the wire by domain:
//
//   - mesos: Mesos v1 JSON (common messages, scheduler calls and events,
//     operator calls, responses and events), field names as in Mesos'
//     protobuf JSON mapping so that existing Mesos clients work unchanged.
//   - marathon: Marathon v2 REST JSON (apps, tasks, errors).
//   - agent: Keel's own agent <-> master protocol (Mesos used libprocess
//     messages, which are not a public interface).
//   - recordio: the RecordIO framing Mesos uses for its HTTP streams.
package api
