// Package testimage builds, for tests, a tiny Docker image that needs no
// registry: FROM scratch, holding one static Go HTTP server as its
// entrypoint.
//
// The server (see serverSource) listens on -port, else $PORT, else 8080;
// GET / answers "ok <hostname>", GET /env/NAME answers the value of the
// environment variable NAME; -exit N makes it exit with status N at once;
// SIGTERM stops it with status 0. Its stdout gets "listening on :PORT".
//
// The image is tagged with a hash of the server's source, so building is
// idempotent: a test that finds the tag reuses it, and a changed source
// gets a new tag. It must not be used outside tests.
package testimage
