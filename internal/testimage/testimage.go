package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// Repository is the image's repository; the tag is a hash of the source.
const Repository = "keel-test/echo"

// serverSource is the image's whole program.
const serverSource = `package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	port := flag.String("port", os.Getenv("PORT"), "port to listen on")
	exit := flag.Int("exit", -1, "exit with this status at once")
	flag.Parse()
	if *exit >= 0 {
		fmt.Println("exiting with", *exit)
		os.Exit(*exit)
	}
	if *port == "" {
		*port = "8080"
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "ok %s", host) })
	mux.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(strings.TrimPrefix(r.URL.Path, "/env/")))
	})
	ln, err := net.Listen("tcp", ":"+*port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("listening on :" + *port)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		fmt.Println("terminated")
		os.Exit(0)
	}()
	http.Serve(ln, mux)
}
`

const dockerfile = "FROM scratch\nCOPY server /server\nENTRYPOINT [\"/server\"]\n"

// Tag is the image reference Build produces.
func Tag() string {
	h := sha256.Sum256([]byte(serverSource + dockerfile))
	return Repository + ":" + hex.EncodeToString(h[:6])
}

// Build makes sure the image is on the engine cli talks to and returns its
// reference. It fails t (never skips) when Docker or the Go tool is
// missing.
func Build(t testing.TB, cli *client.Client) string {
	t.Helper()
	ref, err := buildImage(t.TempDir(), cli)
	if err != nil {
		t.Fatalf("testimage: %v", err)
	}
	return ref
}

func buildImage(dir string, cli *client.Client) (string, error) {
	ref := Tag()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !client.IsErrNotFound(err) {
		return "", fmt.Errorf("docker engine not usable: %w", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
		if _, err := os.Stat(goTool); err != nil {
			return "", fmt.Errorf("the go tool is needed to build the test image: not in $PATH nor %s", goTool)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(serverSource), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module keeltestecho\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", "server", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build of the test server: %w: %s", err, out)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "server"))
	if err != nil {
		return "", err
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"server", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	resp, err := cli.ImageBuild(ctx, &tarball, build.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	defer resp.Body.Close()
	// The build reports failures inside its JSON message stream.
	dec := json.NewDecoder(resp.Body)
	var log strings.Builder
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("docker build: reading its output: %w", err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" {
			return "", fmt.Errorf("docker build: %s\n%s", msg.Error, log.String())
		}
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("docker build left no image %s: %w\n%s", ref, err, log.String())
	}
	return ref, nil
}
