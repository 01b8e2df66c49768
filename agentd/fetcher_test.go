package agentd

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keelhq/keel/api/agent"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/testimage"
)

// entry is one member of an archive built by a test.
type entry struct {
	name, body, link string
	mode             int64
	typ              byte // tar type; 0 is a regular file
}

func tarball(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, ModTime: time.Unix(0, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zipball(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := fs.FileMode(0o644)
		if e.mode != 0 {
			mode = fs.FileMode(e.mode)
		}
		body := e.body
		switch {
		case e.typ == tar.TypeSymlink:
			mode, body = fs.ModeSymlink|0o777, e.link
		case strings.HasSuffix(e.name, "/"):
			mode = fs.ModeDir | 0o755
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fileServer serves files by path; /slow never answers until the
// request is cancelled, /chunked streams 120 bytes of unknown length,
// others are a 404.
func fileServer(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			<-r.Context().Done()
			return
		case "/chunked": // no Content-Length: the cap applies as it streams
			w.Write(bytes.Repeat([]byte("x"), 60))
			w.(http.Flusher).Flush()
			w.Write(bytes.Repeat([]byte("x"), 60))
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

// tree lists a directory: name -> contents ("dir", "-> target" for links)
// plus the permission bits of regular files.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, _ := d.Info()
		switch {
		case d.IsDir():
			out[rel] = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		default:
			b, _ := os.ReadFile(p)
			out[rel] = fi.Mode().Perm().String() + " " + string(b)
		}
		return nil
	})
	return out
}

func TestFetcher(t *testing.T) {
	src := t.TempDir()
	local := filepath.Join(src, "local.txt")
	if err := os.WriteFile(local, []byte("from disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	tgz := gz(t, tarball(t,
		entry{name: "app/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "app/run.sh", body: "#!/bin/sh\necho run\n", mode: 0o4755}, // setuid is dropped
		entry{name: "app/current", typ: tar.TypeSymlink, link: "run.sh"},
		entry{name: "./top.txt", body: "top"},
		entry{name: "app/hard", typ: tar.TypeLink, link: "app/run.sh"},
	))
	srv := fileServer(t, map[string][]byte{
		"/plain.txt":    []byte("hello"),
		"/bin/tool":     []byte("#!/bin/sh\n"),
		"/pkg.tar.gz":   tgz,
		"/pkg.tgz":      tgz,
		"/pkg.tar":      tarball(t, entry{name: "t.txt", body: "tar"}),
		"/site.zip":     zipball(t, entry{name: "site/"}, entry{name: "site/index.html", body: "<h1>hi</h1>"}, entry{name: "site/link", typ: tar.TypeSymlink, link: "index.html"}),
		"/notes.txt.gz": gz(t, []byte("unzipped")),
		"/big":          bytes.Repeat([]byte("x"), 101),
		"/bomb.tar.gz":  gz(t, tarball(t, entry{name: "a", body: strings.Repeat("x", 600)}, entry{name: "b", body: strings.Repeat("x", 600)})),
		"/up.tar":       tarball(t, entry{name: "ok.txt", body: "ok"}, entry{name: "../escaped.txt", body: "evil"}),
		"/abs.tar":      tarball(t, entry{name: "/tmp/keel-fetch-abs.txt", body: "evil"}),
		"/sym.tar":      tarball(t, entry{name: "out", typ: tar.TypeSymlink, link: "../../.."}),
		"/absym.tar":    tarball(t, entry{name: "etc", typ: tar.TypeSymlink, link: "/etc"}),
		"/through.tar":  tarball(t, entry{name: "d", typ: tar.TypeSymlink, link: "."}, entry{name: "d/x", body: "via link"}),
		"/hardout.tar":  tarball(t, entry{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}),
		"/up.zip":       zipball(t, entry{name: "../z.txt", body: "evil"}),
		"/symout.zip":   zipball(t, entry{name: "l", typ: tar.TypeSymlink, link: "../../x"}),
	})
	u := func(p string) string { return srv.URL + p }

	cases := []struct {
		name    string
		uris    []mesos.URI
		want    map[string]string // the sandbox afterwards (when no error)
		wantErr string            // in the error, with the URI
		max     int64             // the fetcher's byte cap (default 1 MiB)
	}{
		{name: "plain file", uris: []mesos.URI{{Value: u("/plain.txt")}},
			want: map[string]string{"plain.txt": "-rw-r--r-- hello"}},
		{name: "executable, not extracted", uris: []mesos.URI{{Value: u("/bin/tool"), Executable: true}},
			want: map[string]string{"tool": "-rwxr-xr-x #!/bin/sh\n"}},
		{name: "output_file in a new directory", uris: []mesos.URI{{Value: u("/plain.txt"), OutputFile: "conf/greeting"}},
			want: map[string]string{"conf": "dir", "conf/greeting": "-rw-r--r-- hello"}},
		{name: "tar.gz unpacked, archive kept", uris: []mesos.URI{{Value: u("/pkg.tar.gz")}},
			want: map[string]string{"pkg.tar.gz": "-rw-r--r-- " + string(tgz), "app": "dir", "app/run.sh": "-rwxr-xr-x #!/bin/sh\necho run\n",
				"app/current": "-> run.sh", "top.txt": "-rw-r--r-- top", "app/hard": "-rwxr-xr-x #!/bin/sh\necho run\n"}},
		{name: "tgz with extract true", uris: []mesos.URI{{Value: u("/pkg.tgz"), Extract: yes()}},
			want: map[string]string{"pkg.tgz": "-rw-r--r-- " + string(tgz), "app": "dir", "app/run.sh": "-rwxr-xr-x #!/bin/sh\necho run\n",
				"app/current": "-> run.sh", "top.txt": "-rw-r--r-- top", "app/hard": "-rwxr-xr-x #!/bin/sh\necho run\n"}},
		{name: "extract false", uris: []mesos.URI{{Value: u("/pkg.tar.gz"), Extract: no()}},
			want: map[string]string{"pkg.tar.gz": "-rw-r--r-- " + string(tgz)}},
		{name: "tar", uris: []mesos.URI{{Value: u("/pkg.tar")}},
			want: map[string]string{"pkg.tar": "-rw-r--r-- " + string(tarball(t, entry{name: "t.txt", body: "tar"})), "t.txt": "-rw-r--r-- tar"}},
		{name: "zip", uris: []mesos.URI{{Value: u("/site.zip"), OutputFile: "s.zip"}},
			want: map[string]string{"s.zip": "-rw-r--r-- " + string(zipball(t, entry{name: "site/"}, entry{name: "site/index.html", body: "<h1>hi</h1>"}, entry{name: "site/link", typ: tar.TypeSymlink, link: "index.html"})),
				"site": "dir", "site/index.html": "-rw-r--r-- <h1>hi</h1>", "site/link": "-> index.html"}},
		{name: "lone gz", uris: []mesos.URI{{Value: u("/notes.txt.gz")}},
			want: map[string]string{"notes.txt.gz": "-rw-r--r-- " + string(gz(t, []byte("unzipped"))), "notes.txt": "-rw-r--r-- unzipped"}},
		{name: "file URI and absolute path", uris: []mesos.URI{{Value: "file://" + local}, {Value: local, OutputFile: "again.txt"}},
			want: map[string]string{"local.txt": "-rw-r--r-- from disk", "again.txt": "-rw-r--r-- from disk"}},
		{name: "404", uris: []mesos.URI{{Value: u("/plain.txt")}, {Value: u("/missing")}}, wantErr: "404"},
		{name: "too big", uris: []mesos.URI{{Value: u("/big")}}, wantErr: "more than the 100 allowed", max: 100},
		{name: "too big, streamed", uris: []mesos.URI{{Value: u("/chunked")}}, wantErr: "more than the 100 bytes allowed", max: 100},
		{name: "streamed under the cap", uris: []mesos.URI{{Value: u("/chunked")}}, want: map[string]string{"chunked": "-rw-r--r-- " + strings.Repeat("x", 120)}},
		{name: "archive unpacks to too much", uris: []mesos.URI{{Value: u("/bomb.tar.gz")}}, wantErr: "more than the 1000 bytes", max: 1000},
		{name: "stalled server", uris: []mesos.URI{{Value: u("/slow")}}, wantErr: "deadline exceeded"},
		{name: "missing file", uris: []mesos.URI{{Value: filepath.Join(src, "nope")}}, wantErr: "no such file"},
		{name: "unsupported scheme", uris: []mesos.URI{{Value: "ftp://example.com/x"}}, wantErr: "not supported"},
		{name: "relative path", uris: []mesos.URI{{Value: "x/y"}}, wantErr: "relative"},
		{name: "no file name", uris: []mesos.URI{{Value: srv.URL + "/"}}, wantErr: "output_file"},
		{name: "output_file outside", uris: []mesos.URI{{Value: u("/plain.txt"), OutputFile: "../x"}}, wantErr: "outside the sandbox"},
		{name: "tar entry with ..", uris: []mesos.URI{{Value: u("/up.tar")}}, wantErr: "outside the sandbox"},
		{name: "tar entry absolute", uris: []mesos.URI{{Value: u("/abs.tar")}}, wantErr: "outside the sandbox"},
		{name: "tar symlink out", uris: []mesos.URI{{Value: u("/sym.tar")}}, wantErr: "points outside"},
		{name: "tar absolute symlink", uris: []mesos.URI{{Value: u("/absym.tar")}}, wantErr: "points outside"},
		{name: "tar entry through a symlink", uris: []mesos.URI{{Value: u("/through.tar")}}, wantErr: "symbolic link"},
		{name: "tar hard link out", uris: []mesos.URI{{Value: u("/hardout.tar")}}, wantErr: "outside the sandbox"},
		{name: "zip entry with ..", uris: []mesos.URI{{Value: u("/up.zip")}}, wantErr: "outside the sandbox"},
		{name: "zip symlink out", uris: []mesos.URI{{Value: u("/symout.zip")}}, wantErr: "points outside"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Sandboxes two levels down, so escapes land in parent, which is checked.
			parent := t.TempDir()
			sandbox := filepath.Join(parent, "a", "sandbox")
			if err := os.MkdirAll(sandbox, 0o755); err != nil {
				t.Fatal(err)
			}
			f := &fetcher{timeout: 500 * time.Millisecond, maxBytes: 1 << 20}
			if tc.max != 0 {
				f.maxBytes = tc.max
			}
			err := f.fetchAll(context.Background(), sandbox, tc.uris)
			if tc.wantErr != "" {
				last := tc.uris[len(tc.uris)-1].Value
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), last) || !errors.Is(err, errFetch) {
					t.Fatalf("err = %v, want one with %q naming %s", err, tc.wantErr, last)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			// Nothing ever lands outside the sandbox, nor stays half-written.
			for name := range tree(t, parent) {
				if name != "a" && name != filepath.Join("a", "sandbox") && !strings.HasPrefix(name, filepath.Join("a", "sandbox")+"/") {
					t.Fatalf("%s written outside the sandbox", name)
				}
			}
			got := tree(t, sandbox)
			for name := range got {
				if strings.HasPrefix(filepath.Base(name), ".fetch-") {
					t.Fatalf("temporary file %s left behind", name)
				}
			}
			if _, err := os.Stat("/tmp/keel-fetch-abs.txt"); err == nil {
				t.Fatal("absolute tar entry written to /tmp")
			}
			if tc.wantErr != "" {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("sandbox holds %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("%s: %q, want %q (sandbox %v)", k, got[k], v, got)
				}
			}
		})
	}
}

// TestFetcherTarBz2AndXz unpacks archives made by the system's tar, with
// the compressors the standard library only reads (bzip2) or lacks (xz).
func TestFetcherTarBz2AndXz(t *testing.T) {
	need := func(tool string) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s: install it (apt-get install tar bzip2 xz-utils)", tool)
		}
	}
	need("tar")
	need("bzip2")
	need("xz")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data.txt"), []byte("compressed"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for name, flag := range map[string]string{"/a.tar.bz2": "-j", "/a.tar.xz": "-J"} {
		out := filepath.Join(t.TempDir(), "a")
		if b, err := exec.Command("tar", flag, "-cf", out, "-C", src, "data.txt").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v: %s", err, b)
		}
		files[name], _ = os.ReadFile(out)
	}
	srv := fileServer(t, files)
	for name := range files {
		t.Run(name, func(t *testing.T) {
			sandbox := t.TempDir()
			if err := newFetcher().fetchAll(context.Background(), sandbox, []mesos.URI{{Value: srv.URL + name}}); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(sandbox, "data.txt")); err != nil || string(b) != "compressed" {
				t.Fatalf("data.txt: %q, %v", b, err)
			}
		})
	}
}

func launchWithURIs(id, cmd string, uris ...mesos.URI) agent.Event {
	ev := launch(id, cmd, nil)
	ev.Launch.Task.Command.URIs = uris
	return ev
}

// TestFetchBeforeLaunch runs process tasks with URIs on a real agent: the
// command runs in a sandbox holding what was fetched, a failed fetch
// fails the task naming the URI, and a task killed while it fetches ends
// killed without ever running.
func TestFetchBeforeLaunch(t *testing.T) {
	m := newFakeMaster(t)
	srv := fileServer(t, map[string][]byte{
		"/app.tar.gz": gz(t, tarball(t, entry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
			entry{name: "bin/hello", body: "#!/bin/sh\necho \"$(cat greeting) from $1\"\n", mode: 0o755})),
		"/greeting": []byte("hello"),
	})
	dir, stopAgent := startAgent(t, m)
	var once sync.Once
	stop := func() { once.Do(stopAgent) }
	defer stop()

	m.out <- launchWithURIs("fetched", "./bin/hello sandbox > out.txt", mesos.URI{Value: srv.URL + "/app.tar.gz"}, mesos.URI{Value: srv.URL + "/greeting"})
	m.waitStates("fetched", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	out, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "fetched", "*", "out.txt"))
	if len(out) != 1 {
		t.Fatalf("out.txt in the sandbox: %v", out)
	}
	if b, _ := os.ReadFile(out[0]); strings.TrimSpace(string(b)) != "hello from sandbox" {
		t.Fatalf("task output %q", b)
	}

	bad := srv.URL + "/missing.tar.gz"
	m.out <- launchWithURIs("badfetch", "touch ran", mesos.URI{Value: srv.URL + "/greeting"}, mesos.URI{Value: bad})
	sts := m.waitStates("badfetch", "TASK_STARTING", "TASK_FAILED")
	if st := sts[1]; st.Reason != mesos.ReasonContainerLaunchFailed || !strings.Contains(st.Message, bad) || st.Source != mesos.SourceAgent {
		t.Fatalf("failed fetch: %+v", st)
	}
	if ran, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "badfetch", "*", "ran")); len(ran) != 0 {
		t.Fatal("the command ran although its fetch failed")
	}
	stderr, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "badfetch", "*", "stderr"))
	if len(stderr) != 1 {
		t.Fatalf("stderr in the sandbox: %v", stderr)
	}
	if b, _ := os.ReadFile(stderr[0]); !strings.Contains(string(b), bad) || !strings.Contains(string(b), "404") {
		t.Fatalf("sandbox stderr %q does not say why the fetch failed", b)
	}

	m.out <- launchWithURIs("slowfetch", "touch ran", mesos.URI{Value: srv.URL + "/slow"})
	m.waitStates("slowfetch", "TASK_STARTING")
	// The event loop is not blocked by the download: another task runs.
	m.out <- launch("meanwhile", "true", nil)
	m.waitStates("meanwhile", "TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED")
	m.out <- kill("slowfetch")
	sts = m.waitStates("slowfetch", "TASK_STARTING", "TASK_KILLING", "TASK_KILLED")
	if st := sts[2]; st.Reason != mesos.ReasonTaskKilledDuringLaunch {
		t.Fatalf("killed while fetching: %+v", st)
	}
	if ran, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "slowfetch", "*", "ran")); len(ran) != 0 {
		t.Fatal("the command of a task killed while fetching ran")
	}

	// Shutdown while fetching: the fetch is cut short and reported.
	m.out <- launchWithURIs("cut", "touch ran", mesos.URI{Value: srv.URL + "/slow"})
	m.waitStates("cut", "TASK_STARTING")
	stop()
	if s := m.states("cut"); len(s) != 2 || s[1] != "TASK_KILLED" {
		t.Fatalf("task fetching at shutdown: %v", s)
	}
}

// TestFetchDockerTask fetches into the sandbox of a Docker task before its
// container starts (the sandbox is mounted in the container), and fails
// the task, naming the URI, when a fetch fails.
func TestFetchDockerTask(t *testing.T) {
	cli := dockerClient(t)
	img := testimage.Build(t, cli)
	m := newFakeMaster(t)
	srv := fileServer(t, map[string][]byte{"/conf.tar.gz": gz(t, tarball(t, entry{name: "conf/app.yml", body: "port: 8080"}))})
	dir := t.TempDir()
	port := freePort(t)
	startDockerAgent(t, m, cli, dir, mesos.Range{Begin: uint64(port), End: uint64(port)}, true)

	ev := dockerTask("dfetch", img, "HOST", port, nil, "--port", "0")
	ev.Launch.Task.Command.URIs = []mesos.URI{{Value: srv.URL + "/conf.tar.gz"}}
	m.out <- ev
	sts := m.waitStates("dfetch", "TASK_STARTING", "TASK_RUNNING")
	if containerID(t, sts[1]) == "" {
		t.Fatal("no container")
	}
	got, _ := filepath.Glob(filepath.Join(dir, "sandboxes", "F", "dfetch", "*", "conf", "app.yml"))
	if len(got) != 1 {
		t.Fatalf("fetched file in the sandbox: %v", got)
	}
	// The sandbox is what the container has at /mnt/mesos/sandbox.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := cli.ContainerInspect(ctx, containerID(t, sts[1]))
	if err != nil {
		t.Fatal(err)
	}
	sandbox := filepath.Dir(filepath.Dir(got[0]))
	if len(info.HostConfig.Binds) == 0 || info.HostConfig.Binds[0] != sandbox+":"+dockerSandbox {
		t.Fatalf("binds %v, want the sandbox %s", info.HostConfig.Binds, sandbox)
	}
	m.out <- kill("dfetch")
	m.waitStates("dfetch", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED")

	bad := srv.URL + "/nope.zip"
	ev = dockerTask("dbad", img, "HOST", port, nil, "--port", "0")
	ev.Launch.Task.Command.URIs = []mesos.URI{{Value: bad}}
	m.out <- ev
	sts = m.waitStates("dbad", "TASK_STARTING", "TASK_FAILED")
	if st := sts[1]; st.Reason != mesos.ReasonContainerLaunchFailed || !strings.Contains(st.Message, bad) {
		t.Fatalf("failed fetch: %+v", st)
	}
	if n := len(agentContainers(t, cli, dir)); n != 0 {
		t.Fatalf("%d containers created for tasks that failed or were killed", n)
	}
}

// FuzzUnpack feeds arbitrary tar and zip archives to the unpacker: it may
// refuse them, but never panics and never writes outside the sandbox.
func FuzzUnpack(f *testing.F) {
	f.Add(false, tarball(&testing.T{}, entry{name: "a/b", body: "x"}, entry{name: "l", typ: tar.TypeSymlink, link: "a/b"}))
	f.Add(false, tarball(&testing.T{}, entry{name: "../x", body: "x"}))
	f.Add(true, zipball(&testing.T{}, entry{name: "d/"}, entry{name: "d/f", body: "x"}))
	f.Fuzz(func(t *testing.T, isZip bool, data []byte) {
		parent := t.TempDir()
		sandbox := filepath.Join(parent, "s")
		if err := os.Mkdir(sandbox, 0o755); err != nil {
			t.Fatal(err)
		}
		root, err := os.OpenRoot(sandbox)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		u := &unpacker{root: root, max: 1 << 16, left: 1 << 16}
		if isZip {
			_ = u.zip(bytes.NewReader(data), int64(len(data)))
		} else {
			_ = u.tar(bytes.NewReader(data))
		}
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 || entries[0].Name() != "s" {
			t.Fatalf("written next to the sandbox: %v", entries)
		}
		filepath.WalkDir(sandbox, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				rel, _ := filepath.Rel(sandbox, filepath.Join(filepath.Dir(p), target))
				if filepath.IsAbs(target) || !filepath.IsLocal(rel) {
					t.Fatalf("link %s -> %s points outside", p, target)
				}
			}
			return nil
		})
	})
}
