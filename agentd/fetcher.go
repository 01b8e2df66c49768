package agentd

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// The fetcher is Mesos' mesos-fetcher, in process: before a task's command
// runs, every CommandInfo.uris entry is put into the sandbox. http and
// https URIs are downloaded (a timeout per URI, a size cap), file:// URIs
// and absolute paths are copied. Unless executable is set (then the file
// gets mode 0755 and is left as it is), an archive is unpacked into the
// sandbox when extract is unset or true: .tar, .tar.gz/.tgz, .tar.bz2/.tbz2
// and .zip with the standard library, .tar.xz/.txz through the xz tool,
// and a lone .gz is decompressed next to itself. As with Mesos the archive
// itself stays. No entry may land outside the sandbox: absolute names,
// ".." and links that point out are refused, and every write goes through
// an os.Root on the sandbox. cache is accepted and ignored: each task
// fetches its own copy.

// Fetcher defaults.
const (
	fetchTimeout  = 5 * time.Minute // one URI, download and unpacking
	fetchMaxBytes = 4 << 30         // one download, and what one archive unpacks to
)

// errFetch is the cause of every fetch failure; its message goes on with
// the URI and why.
var errFetch = errors.New("agentd: failed to fetch URI")

// fetcher puts a task's URIs into its sandbox.
type fetcher struct {
	// timeout bounds each URI.
	timeout time.Duration
	// maxBytes caps each download and the bytes one archive unpacks to.
	maxBytes int64
}

func newFetcher() *fetcher {
	return &fetcher{timeout: fetchTimeout, maxBytes: fetchMaxBytes}
}

// fetchAll fetches uris into sandbox, in order, and stops at the first
// failure, whose message names the URI.
func (f *fetcher) fetchAll(ctx context.Context, sandbox string, uris []mesos.URI) error {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	root, err := os.OpenRoot(sandbox)
	if err != nil {
		return fmt.Errorf("agentd: fetch: sandbox: %w", err)
	}
	defer root.Close()
	for _, u := range uris {
		uctx, cancel := context.WithTimeout(ctx, f.timeout)
		err := f.fetchOne(uctx, hc, root, u)
		cancel()
		if err != nil {
			return fmt.Errorf("%w %q: %w", errFetch, u.Value, err)
		}
	}
	return nil
}

// fetchOne puts one URI into the sandbox.
func (f *fetcher) fetchOne(ctx context.Context, hc *http.Client, root *os.Root, u mesos.URI) error {
	src, name, err := source(u)
	if err != nil {
		return err
	}
	if err := localName(root, name); err != nil {
		return err
	}
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := f.download(ctx, hc, root, src, name); err != nil {
		return err
	}
	if u.Executable {
		if err := root.Chmod(name, 0o755); err != nil {
			return err
		}
		return nil
	}
	if u.Extract != nil && !*u.Extract {
		return nil
	}
	return f.extract(ctx, root, name)
}

// source parses a URI into what to read (a URL or an absolute path) and
// the sandbox-relative name to write it to.
func source(u mesos.URI) (*url.URL, string, error) {
	v := strings.TrimSpace(u.Value)
	var src *url.URL
	if strings.HasPrefix(v, "/") {
		src = &url.URL{Scheme: "file", Path: v}
	} else {
		p, err := url.Parse(v)
		if err != nil {
			return nil, "", err
		}
		switch p.Scheme {
		case "http", "https":
		case "file":
			if p.Host != "" && p.Host != "localhost" {
				return nil, "", fmt.Errorf("file URI of host %q", p.Host)
			}
		case "":
			return nil, "", errors.New("relative paths are not supported (use an absolute path or a URL)")
		default:
			return nil, "", fmt.Errorf("scheme %q is not supported (http, https, file)", p.Scheme)
		}
		src = p
	}
	name := u.OutputFile
	if name == "" {
		name = path.Base(src.Path)
		if name == "/" || name == "." || name == "" {
			return nil, "", errors.New("no file name in the URI; set output_file")
		}
	}
	return src, path.Clean(filepath.ToSlash(name)), nil
}

// localName checks that name is a path inside the sandbox that goes
// through no symbolic link.
func localName(root *os.Root, name string) error {
	if !filepath.IsLocal(name) {
		return fmt.Errorf("%q is outside the sandbox", name)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		fi, err := root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%q goes through the symbolic link %q", name, dir)
		}
	}
	return nil
}

// download writes src to name, through a temporary file renamed into
// place once complete.
func (f *fetcher) download(ctx context.Context, hc *http.Client, root *os.Root, src *url.URL, name string) error {
	var body io.ReadCloser
	switch src.Scheme {
	case "file":
		in, err := os.Open(src.Path)
		if err != nil {
			return err
		}
		if fi, err := in.Stat(); err == nil && fi.IsDir() {
			in.Close()
			return fmt.Errorf("%s is a directory", src.Path)
		}
		body = in
	default:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.String(), nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("HTTP %s", resp.Status)
		}
		if resp.ContentLength > f.maxBytes {
			resp.Body.Close()
			return fmt.Errorf("%d bytes, more than the %d allowed", resp.ContentLength, f.maxBytes)
		}
		body = resp.Body
	}
	defer body.Close()
	tmp := path.Join(path.Dir(name), fmt.Sprintf(".fetch-%x", newUUID()))
	out, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer root.Remove(tmp) // gone after the rename, unless something failed
	n, err := io.Copy(out, io.LimitReader(ctxReader{ctx, body}, f.maxBytes+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return err
	case n > f.maxBytes:
		return fmt.Errorf("more than the %d bytes allowed", f.maxBytes)
	}
	if fi, err := root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("%q is a directory in the sandbox", name)
	}
	if err := root.Rename(tmp, name); err != nil {
		return err
	}
	return nil
}

// ctxReader stops reading once ctx is done (a file copy has no deadline
// of its own).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// archiveKind says how a file is unpacked, from its name.
func archiveKind(name string) string {
	n := strings.ToLower(name)
	for _, k := range []struct{ suffix, kind string }{
		{".tar.gz", "tgz"}, {".tgz", "tgz"}, {".tar.bz2", "tbz2"}, {".tbz2", "tbz2"}, {".tbz", "tbz2"},
		{".tar.xz", "txz"}, {".txz", "txz"}, {".tar", "tar"}, {".zip", "zip"}, {".gz", "gz"},
	} {
		if strings.HasSuffix(n, k.suffix) {
			return k.kind
		}
	}
	return ""
}

// extract unpacks the archive name (if it is one) into the sandbox.
func (f *fetcher) extract(ctx context.Context, root *os.Root, name string) error {
	kind := archiveKind(name)
	if kind == "" {
		return nil
	}
	in, err := root.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	u := &unpacker{root: root, max: f.maxBytes, left: f.maxBytes}
	var r io.Reader = ctxReader{ctx, in}
	switch kind {
	case "zip":
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		err = u.zip(in, fi.Size())
		if err != nil {
			return fmt.Errorf("unzip: %w", err)
		}
		return nil
	case "gz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		if err := u.file(name[:len(name)-len(".gz")], 0o644, zr); err != nil {
			return fmt.Errorf("gunzip: %w", err)
		}
		return nil
	case "tgz":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("untar: %w", err)
		}
		defer zr.Close()
		r = zr
	case "tbz2":
		r = bzip2.NewReader(r)
	case "txz":
		xz, err := exec.LookPath("xz")
		if err != nil {
			return errors.New("unpacking .tar.xz needs the xz tool, not found on this agent")
		}
		cmd := exec.CommandContext(ctx, xz, "-dc")
		var stderr bytes.Buffer
		cmd.Stdin, cmd.Stderr = r, &stderr
		pr, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("xz: %w", err)
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("xz: %w", err)
		}
		terr := u.tar(pr)
		io.Copy(io.Discard, pr)
		werr := cmd.Wait()
		if terr != nil {
			return fmt.Errorf("untar: %w", terr)
		}
		if werr != nil {
			return fmt.Errorf("xz: %w: %s", werr, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	if err := u.tar(r); err != nil {
		return fmt.Errorf("untar: %w", err)
	}
	return nil
}

// unpacker writes archive entries under root, refusing any that would
// land (or point) outside it, within a budget of bytes.
type unpacker struct {
	root      *os.Root
	max, left int64
}

// entryName is the sandbox-relative name of an archive entry ("." for
// the archive's top directory).
func (u *unpacker) entryName(name string) (string, error) {
	n := path.Clean(filepath.ToSlash(name))
	if n == "." {
		return n, nil
	}
	if err := localName(u.root, n); err != nil {
		return "", err
	}
	return n, nil
}

// clear removes what is at name unless it is a directory, so that an
// entry replaces it (and never writes through a link).
func (u *unpacker) clear(name string) error {
	fi, err := u.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("entry %q: a directory is in the way", name)
	}
	return u.root.Remove(name)
}

func (u *unpacker) parent(name string) error {
	if dir := path.Dir(name); dir != "." {
		return u.root.MkdirAll(dir, 0o755)
	}
	return nil
}

func (u *unpacker) dir(name string, mode fs.FileMode) error {
	n, err := u.entryName(name)
	if err != nil || n == "." {
		return err
	}
	if fi, err := u.root.Lstat(n); err == nil {
		if fi.IsDir() {
			return nil
		}
		if err := u.root.Remove(n); err != nil {
			return err
		}
	}
	return u.root.MkdirAll(n, mode.Perm()|0o700)
}

func (u *unpacker) file(name string, mode fs.FileMode, r io.Reader) error {
	n, err := u.entryName(name)
	if err != nil {
		return err
	}
	if n == "." {
		return fmt.Errorf("entry %q is not a file name", name)
	}
	if err := u.parent(n); err != nil {
		return err
	}
	if err := u.clear(n); err != nil {
		return err
	}
	out, err := u.root.OpenFile(n, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()) // no setuid from an archive
	if err != nil {
		return err
	}
	w, err := io.Copy(out, io.LimitReader(r, u.left+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	if w > u.left {
		return fmt.Errorf("archive unpacks to more than the %d bytes allowed", u.max)
	}
	u.left -= w
	return nil
}

// symlink creates name -> target; target must be relative and resolve,
// from name's directory, inside the sandbox.
func (u *unpacker) symlink(name, target string) error {
	n, err := u.entryName(name)
	if err != nil {
		return err
	}
	if n == "." {
		return fmt.Errorf("entry %q is not a file name", name)
	}
	t := filepath.ToSlash(target)
	if t == "" || strings.HasPrefix(t, "/") || !filepath.IsLocal(filepath.FromSlash(path.Join(path.Dir(n), t))) {
		return fmt.Errorf("link %q -> %q points outside the sandbox", name, target)
	}
	if err := u.parent(n); err != nil {
		return err
	}
	if err := u.clear(n); err != nil {
		return err
	}
	return u.root.Symlink(target, n)
}

// link creates name as a hard link to the archive's earlier entry target.
func (u *unpacker) link(name, target string) error {
	n, err := u.entryName(name)
	if err != nil {
		return err
	}
	t, err := u.entryName(target)
	if err != nil {
		return err
	}
	fi, err := u.root.Lstat(t)
	if err != nil {
		return fmt.Errorf("hard link %q -> %q: %w", name, target, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("hard link %q -> %q: not a regular file", name, target)
	}
	if err := u.parent(n); err != nil {
		return err
	}
	if err := u.clear(n); err != nil {
		return err
	}
	return u.root.Link(t, n)
}

// tar unpacks a tar stream.
func (u *unpacker) tar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, tar.ErrInsecurePath) { // with GODEBUG=tarinsecurepath=0
			return fmt.Errorf("an entry is outside the sandbox: %w", err)
		}
		if err != nil {
			return err
		}
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			err = u.dir(h.Name, mode)
		case tar.TypeReg: // the reader turns old '\x00' entries into TypeReg
			err = u.file(h.Name, mode, tr)
		case tar.TypeSymlink:
			err = u.symlink(h.Name, h.Linkname)
		case tar.TypeLink:
			err = u.link(h.Name, h.Linkname)
		case tar.TypeXGlobalHeader:
		default:
			err = fmt.Errorf("entry %q: type %q is not supported", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

// zip unpacks a zip file.
func (u *unpacker) zip(r io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(r, size)
	if errors.Is(err, zip.ErrInsecurePath) { // with GODEBUG=zipinsecurepath=0
		return fmt.Errorf("an entry is outside the sandbox: %w", err)
	}
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		mode := f.Mode()
		switch {
		case mode.IsDir():
			err = u.dir(f.Name, mode)
		case mode&fs.ModeSymlink != 0:
			err = u.zipLink(f)
		case mode.IsRegular():
			err = u.zipFile(f, mode)
		default:
			err = fmt.Errorf("entry %q: mode %v is not supported", f.Name, mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) zipFile(f *zip.File, mode fs.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return u.file(f.Name, mode, rc)
}

func (u *unpacker) zipLink(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	target, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return err
	}
	return u.symlink(f.Name, string(target))
}

// newFetch makes the context of t's fetch, cancelled by t.stopFetch (a
// kill) or when the agent detaches from its tasks. Call it before t is
// shared; the fetch (or whoever gives up on it) calls t.stopFetch.
func (a *Agent) newFetch(t *task) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.stopFetch = cancel
	go func() {
		select {
		case <-a.detached:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx
}

// fetch puts t's URIs into its sandbox; when that fails it says what to
// report: TASK_FAILED naming the URI, or why the fetch was cut short.
func (a *Agent) fetch(ctx context.Context, t *task) (state mesos.TaskState, reason, msg string, ok bool) {
	defer t.stopFetch()
	start := time.Now()
	err := os.MkdirAll(t.sandbox, 0o755)
	if err == nil {
		err = newFetcher().fetchAll(ctx, t.sandbox, t.info.Command.URIs)
	}
	if err == nil {
		a.log.Info("fetched the task's URIs", "task_id", t.info.TaskID.Value, "uris", len(t.info.Command.URIs), "duration", time.Since(start))
		return "", "", "", true
	}
	a.mu.Lock()
	killing, stopping := t.killing, a.stopping
	a.mu.Unlock()
	switch {
	case killing:
		return mesos.TaskKilled, mesos.ReasonTaskKilledDuringLaunch, "Task killed during launch", false
	case stopping:
		return mesos.TaskLost, mesos.ReasonAgentRemoved, "Agent is shutting down", false
	}
	// As with Mesos, the sandbox's stderr says why the task never ran.
	if f, ferr := os.OpenFile(filepath.Join(t.sandbox, "stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); ferr == nil {
		fmt.Fprintln(f, err)
		f.Close()
	}
	return mesos.TaskFailed, mesos.ReasonContainerLaunchFailed, err.Error(), false
}

// launchFetching launches a process task whose command has URIs: it is
// TASK_STARTING at once, and its URIs are fetched and its process started
// off the event loop and off the agent's lock.
func (a *Agent) launchFetching(t *task) {
	a.newSandbox(t)
	ctx := a.newFetch(t)
	a.mu.Lock()
	if a.stopping {
		a.mu.Unlock()
		t.stopFetch()
		a.releaseSandbox(t)
		a.status(t, mesos.TaskLost, mesos.ReasonAgentRemoved, "Agent is shutting down")
		return
	}
	a.tasks[t.info.TaskID.Value] = t
	a.status(t, mesos.TaskStarting, "", "")
	a.wg.Add(1)
	a.mu.Unlock()
	go func() {
		defer a.wg.Done()
		defer a.releaseSandbox(t)
		fail := func(state mesos.TaskState, reason, msg string) { a.launchFailed(t, state, reason, msg) }
		if state, reason, msg, ok := a.fetch(ctx, t); !ok {
			fail(state, reason, msg)
			return
		}
		a.startProcess(t, fail)
	}()
}
