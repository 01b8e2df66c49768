// Package bench holds Keel's benchmarks that need several components at
// once (see ../shared/BENCH.md for the protocol). They run with go test
// -bench; `make bench` runs them all. A benchmark is not a test: nothing
// here asserts a timing.
package bench
