// Package mesos holds the Mesos v1 HTTP API messages as JSON: the common
// messages of mesos/v1/mesos.proto, the scheduler API (v1/scheduler.proto)
// and the operator API (v1/master.proto). Field names follow the protobuf
// JSON mapping Mesos uses (snake_case, enums as their names), so a Mesos
// client in any language can talk to Keel.
//
// Only the fields Keel reads or writes are declared; unknown fields in input
// are ignored, as the Mesos master ignores them.
package mesos
