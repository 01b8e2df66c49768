// Package e2e holds Keel's end-to-end tests: they build the keel binary,
// run it as child processes on free loopback ports, and drive it only
// through its public interfaces with real clients (HTTP, dig, curl, TCP).
package e2e
