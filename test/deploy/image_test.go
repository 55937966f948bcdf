package deploy_test

// The image, built without a daemon: go-containerregistry assembles the
// final stage of the Dockerfile (its COPYs as layers, its USER, EXPOSE,
// VOLUME, ENTRYPOINT, CMD, HEALTHCHECK, WORKDIR, ENV and LABEL as the
// image config) onto an empty base, writes it as an OCI image layout, and
// the test reads the layout back and checks what a container of it would
// get: the binary where ENTRYPOINT runs it, static and working, the config
// valid at the path CMD names, a non-root user who can run the one and read
// the other and write the state volume, and ports that match the config.
//
// The base is empty.Image, not gcr.io/distroless/static-debian12: its
// registry is not reachable from where these tests run. Whatever the base
// adds (CA certificates, tzdata, /etc/passwd, /tmp, its PATH and
// SSL_CERT_FILE) is not in this image and is not checked here.

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"gatehouse/internal/config"
	"gatehouse/internal/testutil"
)

// imageFS is an image's flattened filesystem, extracted under root.
type imageFS struct {
	root  string
	files map[string]*tar.Header // by absolute path in the image
}

func extract(img v1.Image, root string) (*imageFS, error) {
	fs := &imageFS{root: root, files: map[string]*tar.Header{"/": {Typeflag: tar.TypeDir, Mode: 0o755}}}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fs, nil
		} else if err != nil {
			return nil, err
		}
		name := path.Clean("/" + h.Name)
		fs.files[name] = h
		host := fs.path(name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(host, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(host), 0o755); err == nil {
				// Readable here whatever the mode; the image's modes are
				// checked from the headers.
				err = writeFile(host, tr, os.FileMode(h.Mode).Perm()|0o600)
			}
		}
		if err != nil {
			return nil, err
		}
	}
}

// forkMu keeps a file being written from being open while another
// subtest starts a process: the child would inherit the descriptor until it
// execs, and executing the written file in that window fails with "text
// file busy" (ETXTBSY, golang/go#22315). Writers hold it; run holds it
// shared until exec has happened (cmd.Start returns).
var forkMu sync.RWMutex

func writeFile(name string, r io.Reader, mode os.FileMode) error {
	forkMu.Lock()
	defer forkMu.Unlock()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	return errors.Join(err, f.Close())
}

// path is where the image's file name was extracted to.
func (fs *imageFS) path(name string) string { return filepath.Join(fs.root, filepath.FromSlash(name)) }

// can reports whether uid:gid may access name with perm (r=4, w=2, x=1),
// including searching every directory above it.
func (fs *imageFS) can(name string, uid, gid int, perm int64) bool {
	allows := func(h *tar.Header, perm int64) bool {
		if uid == 0 {
			return true
		}
		m := h.Mode & 0o777
		switch {
		case h.Uid == uid:
			m >>= 6
		case h.Gid == gid:
			m >>= 3
		}
		return m&perm == perm
	}
	h, ok := fs.files[name]
	if !ok || !allows(h, perm) {
		return false
	}
	for d := path.Dir(name); ; d = path.Dir(d) {
		if dh, ok := fs.files[d]; !ok || !allows(dh, 1) {
			return false
		}
		if d == "/" {
			return true
		}
	}
}

// checkImage returns every way the built image falls short; version is
// what `gatehouse version` must print after "gatehouse ".
func checkImage(img v1.Image, fs *imageFS, version string) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	cf, err := img.ConfigFile()
	if err != nil {
		return []string{err.Error()}
	}
	c := cf.Config

	// The user: numeric (no /etc/passwd here, and Kubernetes'
	// runAsNonRoot needs a number) and not root.
	uid, gid, err := parseOwner(c.User)
	switch {
	case err != nil:
		bad("USER: %v", err)
	case c.User == "" || uid == 0:
		bad("USER %q: the container runs as root", c.User)
	case uid != imageUID:
		bad("USER %q: want %d (the owner of the state volume)", c.User, imageUID)
	}
	user := fmt.Sprintf("%d:%d", uid, gid)

	// What it runs, and that the user can run it.
	argv := append(slices.Clone(c.Entrypoint), c.Cmd...)
	if want := []string{imageBinary, "run", "-c", imageConfig}; !slices.Equal(argv, want) {
		bad("ENTRYPOINT + CMD = %q, want %q", argv, want)
	}
	var bin, conf string
	if len(argv) > 0 {
		bin = argv[0]
	}
	if i := slices.Index(argv, "-c"); i > 0 && i+1 < len(argv) {
		conf = argv[i+1]
	}
	if h, ok := fs.files[bin]; !ok || h.Typeflag != tar.TypeReg {
		bad("ENTRYPOINT %q: not a file in the image", bin)
		bin = ""
	} else if !fs.can(bin, uid, gid, 5) {
		bad("%s: %s cannot execute it (mode %o, owner %d:%d)", bin, user, h.Mode, h.Uid, h.Gid)
	}
	if bin != "" {
		if err := staticELF(fs.path(bin), cf.Architecture); err != nil {
			bad("%s: %v", bin, err)
		} else if out, err := run(fs.path(bin), "version"); err != nil || !slices.Equal(strings.Fields(out)[:min(2, len(strings.Fields(out)))], []string{"gatehouse", version}) {
			bad("%s version: %q, %v; want \"gatehouse %s …\"", bin, out, err, version)
		}
	}
	if h, ok := fs.files[conf]; !ok || h.Typeflag != tar.TypeReg {
		bad("CMD's -c %q: not a file in the image", conf)
		conf = ""
	} else if !fs.can(conf, uid, gid, 4) {
		bad("%s: %s cannot read it (mode %o, owner %d:%d)", conf, user, h.Mode, h.Uid, h.Gid)
	}
	if h := c.Healthcheck; h != nil && (len(h.Test) < 2 || h.Test[0] != "CMD" || fs.files[h.Test[1]] == nil || !fs.can(h.Test[1], uid, gid, 5)) {
		bad("HEALTHCHECK %q: want CMD and a program in the image the user can run", h.Test)
	}

	// The state volume exists, and the user owns it.
	if _, ok := c.Volumes[stateDir]; !ok {
		bad("VOLUME %q: want %s (ACME storage)", slices.Sorted(maps.Keys(c.Volumes)), stateDir)
	}
	for v := range c.Volumes {
		if h, ok := fs.files[v]; !ok || h.Typeflag != tar.TypeDir {
			bad("VOLUME %s: not a directory in the image", v)
		} else if h.Uid != uid || !fs.can(v, uid, gid, 7) {
			bad("VOLUME %s: not writable by %s (mode %o, owner %d:%d; a new volume copies them)", v, user, h.Mode, h.Uid, h.Gid)
		}
	}
	if bin != "" && conf != "" {
		errs = append(errs, checkImageConfig(fs, bin, conf, c)...)
	}
	return errs
}

// absPath finds YAML scalars that are absolute paths (after "key: ",
// "- ", "[" or ",", maybe quoted), submatch 2.
var absPath = regexp.MustCompile(`(?m)((?:: |- |\[|, ?)["']?)(/[A-Za-z0-9._/-]+)`)

// checkImageConfig runs `gatehouse validate` on the image's config as the
// container would see it (paths in the image resolve in the extracted
// tree), and compares its listeners with EXPOSE and its ACME storage with
// the volumes.
func checkImageConfig(fs *imageFS, bin, conf string, c v1.Config) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	data, err := os.ReadFile(fs.path(conf))
	if err != nil {
		return []string{err.Error()}
	}
	text := absPath.ReplaceAllStringFunc(string(data), func(m string) string {
		sub := absPath.FindStringSubmatch(m)
		if p := path.Clean(sub[2]); p != "/" && fs.files[p] != nil {
			return sub[1] + fs.path(p)
		}
		return m
	})
	resolved := fs.path(conf) + ".resolved.yaml"
	if err := os.WriteFile(resolved, []byte(text), 0o600); err != nil {
		return []string{err.Error()}
	}
	if out, err := run(fs.path(bin), "validate", "-c", resolved); err != nil {
		bad("%s validate -c %s: %v\n%s", bin, conf, err, out)
		return errs
	}
	doc, err := config.Parse(conf, []byte(text), filepath.Dir(fs.path(conf)))
	if err != nil {
		bad("%s: %v", conf, err)
		return errs
	}
	cfg := doc.Config
	listens := slices.Clone(cfg.Server.Listen)
	if cfg.Admin.Listen != "off" {
		listens = append(listens, cfg.Admin.Listen)
	}
	if t := cfg.Server.TLS; t != nil {
		listens = append(listens, t.Listen...)
	}
	var ports []string
	for _, l := range listens {
		if i := strings.LastIndexByte(l, ':'); i >= 0 {
			ports = append(ports, l[i+1:]+"/tcp")
		}
	}
	slices.Sort(ports)
	if diff := cmp.Diff(slices.Compact(ports), slices.Sorted(maps.Keys(c.ExposedPorts))); diff != "" {
		bad("EXPOSE does not match the listeners of %s (-config +EXPOSE):\n%s", conf, diff)
	}
	if t := cfg.Server.TLS; t != nil && t.ACME != nil {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(c.Volumes)), func(v string) bool {
			return t.ACME.Storage == v || strings.HasPrefix(t.ACME.Storage, v+"/")
		}) {
			bad("%s: acme.storage %s is not on a volume", conf, t.ACME.Storage)
		}
	}
	return errs
}

// staticELF reports why the file is not a statically linked executable
// for arch: no program interpreter, no dynamic section.
func staticELF(name, arch string) error {
	f, err := elf.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; want != 0 && f.Machine != want {
		return fmt.Errorf("ELF for %s, the image says %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			return errors.New("dynamically linked (PT_INTERP): the image has no C library or loader")
		case elf.PT_DYNAMIC:
			return errors.New("has a dynamic section (PT_DYNAMIC)")
		}
	}
	if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
		return errors.New("has .dynamic or .interp")
	}
	return nil
}

func run(bin string, args ...string) (string, error) {
	if runtime.GOOS != "linux" {
		return "", fmt.Errorf("cannot run a linux binary on %s", runtime.GOOS)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{} // as in an image without ENV: nothing from this machine
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	forkMu.RLock()
	err := cmd.Start()
	forkMu.RUnlock()
	if err == nil {
		err = cmd.Wait()
	}
	return out.String(), err
}

// The Dockerfile's final stage, built without a daemon and read back from
// an OCI layout, is an image that runs the binary with the shipped config
// as a non-root user; and broken Dockerfiles give images that fail these
// checks for the reason they were broken.
//
// With GATEHOUSE_IMAGE_LAYOUT=DIR (make image-layout) the layout of the
// shipped Dockerfile is kept in DIR, its binary built with
// -X main.version=$GATEHOUSE_IMAGE_VERSION and tagged with it.
func TestImageLayout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("runs the linux binary it builds")
	}
	root := testutil.RepoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	version := os.Getenv("GATEHOUSE_IMAGE_VERSION")
	if version == "" {
		version = "image-test"
	}
	d := loadDockerfile(t)
	stages := map[string]string{} // built once, for every case: the cases break the final stage only
	for _, s := range d.stages[:len(d.stages)-1] {
		stages[s.Name] = runBuildStage(t, &s, map[string]string{"VERSION": version})
	}
	var layers layerCache
	build := func(t *testing.T, d *dockerfile, dir string) (v1.Image, *imageFS, error) {
		img, err := buildImage(d.final(), root, stages, &layers)
		if err != nil {
			return nil, nil, err
		}
		if img, err = writeLayout(dir, version, img); err != nil {
			return nil, nil, err
		}
		fs, err := extract(img, t.TempDir())
		return img, fs, err
	}

	t.Run("shipped", func(t *testing.T) {
		t.Parallel()
		dir := os.Getenv("GATEHOUSE_IMAGE_LAYOUT")
		switch {
		case dir == "":
			dir = t.TempDir()
		case !filepath.IsAbs(dir):
			t.Fatalf("GATEHOUSE_IMAGE_LAYOUT=%s: want an absolute path (go test runs in test/deploy)", dir)
		default:
			_, statErr := os.Stat(filepath.Join(dir, "oci-layout"))
			entries, _ := os.ReadDir(dir)
			if statErr != nil && len(entries) > 0 {
				t.Fatalf("GATEHOUSE_IMAGE_LAYOUT=%s: not empty and not an OCI layout", dir)
			}
			if err := os.RemoveAll(dir); err != nil { // an earlier layout, replaced
				t.Fatal(err)
			}
		}
		img, fs, err := build(t, d, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range checkImage(img, fs, version) {
			t.Error(e)
		}
		// What the layout holds, file by file.
		got := map[string]string{}
		for name, h := range fs.files {
			if h.Typeflag == tar.TypeReg && !strings.HasPrefix(name, "/usr/share/gatehouse/www/") {
				got[name] = fmt.Sprintf("%o %d:%d", h.Mode, h.Uid, h.Gid)
			}
		}
		want := map[string]string{
			imageBinary: "755 0:0",
			imageConfig: fmt.Sprintf("%o 0:0", mode(t, filepath.Join(root, configSource))),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("files outside www (-want +got):\n%s", diff)
		}
		if h := fs.files["/usr/share/gatehouse/www/index.html"]; h == nil {
			t.Error("/usr/share/gatehouse/www/index.html: not in the image")
		}
		t.Logf("OCI layout in %s", dir)
	})

	tests := []struct {
		name, old, new, want string
	}{
		{"binary elsewhere", "/out/gatehouse /usr/local/bin/gatehouse", "/out/gatehouse /usr/bin/gatehouse", "not a file in the image"},
		{"binary not executable by the user", "COPY --from=build /out/gatehouse", "COPY --from=build --chmod=0700 /out/gatehouse", "cannot execute"},
		{"root user", "USER 65532:65532", "USER 0:0", "runs as root"},
		{"no user", "USER 65532:65532\n", "", "runs as root"},
		{"user by name", "USER 65532:65532", "USER nonroot", "numeric"},
		{"other user", "USER 65532:65532", "USER 1000:1000", "want 65532"},
		{"config elsewhere", "COPY deploy/gatehouse.yaml /etc/gatehouse/gatehouse.yaml", "COPY deploy/gatehouse.yaml /etc/gatehouse.yaml", "not a file in the image"},
		{"config unreadable", "COPY deploy/gatehouse.yaml", "COPY --chmod=0600 deploy/gatehouse.yaml", "cannot read"},
		{"www missing", "COPY www /usr/share/gatehouse/www\n", "", "validate"},
		{"state owned by root", "COPY --from=build --chown=65532:65532 /out/state", "COPY --from=build /out/state", "not writable"},
		{"no volume", "VOLUME [\"/var/lib/gatehouse\"]\n", "", "VOLUME"},
		{"admin port hidden", "EXPOSE 6188 9901", "EXPOSE 6188", "EXPOSE does not match"},
		{"extra port", "EXPOSE 6188 9901", "EXPOSE 6188 9901 443", "EXPOSE does not match"},
		{"shell form", `CMD ["run", "-c", "/etc/gatehouse/gatehouse.yaml"]`, "CMD run -c /etc/gatehouse/gatehouse.yaml", "ENTRYPOINT + CMD"},
		{"healthcheck elsewhere", `CMD ["/usr/local/bin/gatehouse", "healthcheck"`, `CMD ["/bin/gatehouse", "healthcheck"`, "HEALTHCHECK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !bytes.Contains(src, []byte(tc.old)) {
				t.Fatalf("the Dockerfile no longer contains %q: update this case", tc.old)
			}
			broken, _ := parseDockerfile(t, bytes.Replace(src, []byte(tc.old), []byte(tc.new), 1))
			img, fs, err := build(t, broken, t.TempDir())
			var errs []string
			if err != nil {
				errs = []string{err.Error()}
			} else {
				errs = checkImage(img, fs, version)
			}
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("not refused for %q; problems: %q", tc.want, errs)
			}
		})
	}
}

func mode(t *testing.T, name string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
