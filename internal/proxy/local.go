package proxy

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"gatehouse/internal/phase"
)

// serveStatic serves a file below the route's root. The path is already
// normalized (no dot segments, no encoded separators) and os.OpenInRoot
// refuses anything, symlinks included, that leaves the root. Directories
// serve their index file, never a listing. A name that begins with a dot
// (.env, .git/config) is not found unless the route serves dotfiles.
func (e *Engine) serveStatic(st *state, w *respWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		pe := phase.NewError(phase.KindMethod, "only GET and HEAD are allowed here", nil)
		pe.Header = http.Header{"Allow": {"GET, HEAD"}}
		e.failToProxy(st, w, r, pe)
		return
	}
	s := st.route.Static
	p := st.rc.Path
	if s.StripPrefix && st.route.PathPrefix != "/" {
		p = strings.TrimPrefix(p, st.route.PathPrefix)
	}
	name, err := url.PathUnescape(p)
	if err != nil {
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "bad path", err))
		return
	}
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "."
	}
	var f *os.File
	var fi os.FileInfo
	err = fs.ErrNotExist // a hidden name, unless dotfiles are served
	if s.Dotfiles || !hidden(name) {
		f, fi, err = openFile(s.Root, name)
		if err == nil && !s.Dotfiles && !visibleTarget(s.Root, name) {
			f.Close()
			err = fs.ErrNotExist
		}
	}
	if err == nil && fi.IsDir() {
		f.Close()
		if !strings.HasSuffix(st.rc.Path, "/") {
			target := st.rc.Path + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			w.Header().Set("Location", target)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		f, fi, err = openFile(s.Root, path.Join(name, s.Index))
	}
	if err != nil && s.SPA && errors.Is(err, fs.ErrNotExist) {
		f, fi, err = openFile(s.Root, s.Index)
	}
	if err != nil {
		e.failToProxy(st, w, r, phase.NewError(phase.KindNotFound, "not found", err))
		return
	}
	defer f.Close()
	if rg := r.Header["Range"]; len(rg) > 0 {
		if len(rg) > 1 || strings.Count(rg[0], ",") >= maxRanges {
			// Many ranges are many parts to assemble, for a few bytes of
			// request each: ignored (RFC 9110 §14.2 allows it), the whole
			// file is served, as nginx does past max_ranges.
			delete(r.Header, "Range")
		} else {
			r.Header["Range"] = []string{zeroSuffixUnsatisfiable(rg[0], fi.Size())}
		}
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// zeroSuffixUnsatisfiable rewrites each suffix range of length zero
// ("bytes=-0") in a Range value as one that starts at the end of the
// content. A zero-length suffix is unsatisfiable (RFC 9110 §14.1.2), but
// http.ServeContent answers it 206 with "Content-Range: bytes
// 1000-999/1000", which is invalid (§14.4); rewritten, it gets what
// every other unsatisfiable range gets: ignored beside satisfiable ones,
// 416 alone.
func zeroSuffixUnsatisfiable(v string, size int64) string {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || !strings.Contains(spec, "-0") {
		return v
	}
	parts := strings.Split(spec, ",")
	for i, ra := range parts {
		t := strings.TrimSpace(ra)
		if len(t) > 1 && t[0] == '-' && strings.Trim(t[1:], "0") == "" {
			parts[i] = strconv.FormatInt(size, 10) + "-"
		}
	}
	return "bytes=" + strings.Join(parts, ",")
}

// hidden reports whether a segment of name, a slash-separated path
// below a static root, begins with a dot: a file such as .env or
// .htpasswd, or one in a directory such as .git, which a site's folder
// holds by accident far more often than on purpose. ".well-known" (RFC
// 8615: security.txt, app links) is not hidden.
func hidden(name string) bool {
	for seg := range strings.SplitSeq(name, "/") {
		if len(seg) > 1 && seg[0] == '.' && seg != ".well-known" {
			return true
		}
	}
	return false
}

// maxRanges is the most ranges a static route answers in one multipart
// response; a Range with more is ignored.
const maxRanges = 16

// visibleTarget reports whether name, which hidden passed, also resolves
// to no hidden name below root: a symlink such as root/gitlink -> .git
// must not serve what .git/config would not. Symlinks out of the root
// are refused by os.OpenInRoot already. A name that cannot be resolved
// again is treated as hidden.
func visibleTarget(root, name string) bool {
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(filepath.Join(rootReal, filepath.FromSlash(name)))
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(rootReal, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	return !hidden(filepath.ToSlash(rel))
}

func openFile(root, name string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenInRoot(root, name)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// redirect answers with the route's Location; "{uri}" becomes the
// normalized path and the query.
func (e *Engine) redirect(st *state, w *respWriter, r *http.Request) {
	rd := st.route.Redirect
	loc := rd.To
	if strings.Contains(loc, "{uri}") {
		uri := st.rc.Path
		if r.URL.RawQuery != "" {
			uri += "?" + r.URL.RawQuery
		}
		loc = strings.ReplaceAll(loc, "{uri}", uri)
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(rd.Status)
}

// respond answers with the route's fixed response.
func (e *Engine) respond(st *state, w *respWriter, r *http.Request) {
	rs := st.route.Respond
	h := w.Header()
	h.Set("Content-Type", rs.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(rs.Body)))
	w.WriteHeader(rs.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(rs.Body)
	}
}
