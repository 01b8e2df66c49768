package agentd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The Mesos files API over task sandboxes, so a UI can list a sandbox and
// tail stdout/stderr. Every path is confined to WorkDir/sandboxes: ".."
// and symlinks that lead out are refused.

const maxRead = 4 << 20

// sandboxPath resolves a requested path inside the sandboxes root.
func (a *Agent) sandboxPath(p string) (string, int, error) {
	root, err := filepath.EvalSymlinks(filepath.Join(a.cfg.WorkDir, "sandboxes"))
	if err != nil {
		return "", http.StatusNotFound, errors.New("no sandboxes yet")
	}
	if p == "" {
		return "", http.StatusBadRequest, errors.New("expecting 'path' query parameter")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(root, p)
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil {
		return "", http.StatusNotFound, errors.New("no such file or directory")
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", http.StatusForbidden, errors.New("path is outside the task sandboxes")
	}
	return real, 0, nil
}

type fileInfo struct {
	Path  string  `json:"path"`
	Size  int64   `json:"size"`
	Mtime float64 `json:"mtime"`
	Mode  string  `json:"mode"`
	Nlink int     `json:"nlink"`
}

func (a *Agent) handleBrowse(w http.ResponseWriter, r *http.Request) {
	dir, code, err := a.sandboxPath(r.URL.Query().Get("path"))
	if err != nil {
		filesError(w, code, err)
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		filesError(w, http.StatusNotFound, errors.New("not a directory"))
		return
	}
	out := []fileInfo{}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, fileInfo{Path: filepath.Join(dir, e.Name()), Size: info.Size(),
			Mtime: float64(info.ModTime().UnixNano()) / 1e9, Mode: info.Mode().String(), Nlink: 1})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// handleRead serves /files/read?path=&offset=&length=: a chunk as JSON
// {"data","offset"}; offset -1 asks for the file's length only.
func (a *Agent) handleRead(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	path, code, err := a.sandboxPath(q.Get("path"))
	if err != nil {
		filesError(w, code, err)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		filesError(w, http.StatusNotFound, errors.New("no such file"))
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.IsDir() {
		filesError(w, http.StatusBadRequest, errors.New("cannot read a directory"))
		return
	}
	offset, length := int64(-1), int64(maxRead)
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < -1 {
			filesError(w, http.StatusBadRequest, errors.New("'offset' must be a number >= -1"))
			return
		}
	}
	if v := q.Get("length"); v != "" {
		if length, err = strconv.ParseInt(v, 10, 64); err != nil || length < 0 {
			filesError(w, http.StatusBadRequest, errors.New("'length' must be a number >= 0"))
			return
		}
	}
	length = min(length, maxRead)
	resp := struct {
		Data   string `json:"data"`
		Offset int64  `json:"offset"`
	}{Offset: offset}
	if offset == -1 {
		resp.Offset = info.Size()
	} else {
		buf := make([]byte, length)
		n, err := f.ReadAt(buf, offset)
		if err != nil && !errors.Is(err, io.EOF) {
			filesError(w, http.StatusInternalServerError, err)
			return
		}
		resp.Data = string(buf[:n])
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (a *Agent) handleDownload(w http.ResponseWriter, r *http.Request) {
	path, code, err := a.sandboxPath(r.URL.Query().Get("path"))
	if err != nil {
		filesError(w, code, err)
		return
	}
	if info, err := os.Stat(path); err != nil || info.IsDir() {
		filesError(w, http.StatusBadRequest, errors.New("not a file"))
		return
	}
	w.Header().Set("Content-Disposition", "attachment; filename="+strconv.Quote(filepath.Base(path)))
	http.ServeFile(w, r, path)
}

func filesError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
}
