// Package mesosclient holds HTTP clients of the Mesos v1 APIs: Scheduler
// (the SUBSCRIBE stream and calls of /api/v1/scheduler, used by the apps
// framework) and Operator (calls and the SUBSCRIBE event stream of /api/v1,
// used by the gateway's discovery). They speak only the public wire
// protocol, so they work against Keel or Mesos masters alike.
//
// Leader detection is not theirs: they talk to the master URL they are
// given (a later issue adds following redirects and ZooKeeper).
package mesosclient
