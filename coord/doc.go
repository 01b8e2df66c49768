// Package coord owns the durable state of the masters and of the apps
// framework, and (with the HA issue) leader election.
//
// This version has the standalone back end: Bolt, an embedded bbolt file
// under the master's work dir whose writes are fsynced before they are
// acknowledged. Keys are flat strings ("apps//prod/web", "framework/id");
// callers choose their own prefixes. coord knows nothing about what the
// values mean.
package coord
