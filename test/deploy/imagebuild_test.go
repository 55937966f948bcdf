package deploy_test

// The daemonless build: a Dockerfile's stages turned into an image with
// go-containerregistry, as BuildKit would for the instructions they use.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"gatehouse/internal/testutil"
)

// layerTime is the modification time of every file in the layers and the
// creation time in the config, so the same inputs give the same digests.
var layerTime = time.Unix(0, 0).UTC()

// runBuildStage does what the build stage's RUN lines say, on this machine
// instead of in golang:…: `go build … -o P` (with the stage's ENV and ARG
// defaults, args overriding them, GOOS=linux, from the repository root, as
// its COPYs put the sources in its WORKDIR) and `mkdir -p P`. P lands under
// the returned directory, which stands for the stage's filesystem. `go mod
// download` is skipped (the module cache has it); any other command fails.
func runBuildStage(t *testing.T, s *instructions.Stage, args map[string]string) string {
	t.Helper()
	root := t.TempDir()
	env := map[string]string{}
	for _, c := range s.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, a := range c.Args {
				if a.Value != nil {
					env[a.Key] = *a.Value
				}
				if v, ok := args[a.Key]; ok {
					env[a.Key] = v
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.RunCommand:
			words, err := shell.NewLex('\\').ProcessWords(strings.Join(c.CmdLine, " "), shell.EnvsFromSlice(envList(env)))
			if err != nil {
				t.Fatalf("build stage: %s: %v", c, err)
			}
			for cmd := range splitAnd(words) {
				runBuildCommand(t, root, cmd, env)
			}
		}
	}
	return root
}

// splitAnd yields the commands of "a && b && c".
func splitAnd(words []string) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(words) > 0 {
			i := slices.Index(words, "&&")
			if i < 0 {
				i = len(words)
			}
			if !yield(words[:i]) {
				return
			}
			words = words[min(i+1, len(words)):]
		}
	}
}

func runBuildCommand(t *testing.T, root string, cmd []string, env map[string]string) {
	t.Helper()
	switch {
	case slices.Equal(cmd, []string{"go", "mod", "download"}):
	case len(cmd) == 3 && cmd[0] == "mkdir" && cmd[1] == "-p" && path.IsAbs(cmd[2]):
		if err := os.MkdirAll(filepath.Join(root, cmd[2]), 0o755); err != nil {
			t.Fatal(err)
		}
	case len(cmd) > 2 && cmd[0] == "go" && cmd[1] == "build":
		args := slices.Clone(cmd[1:])
		i := slices.Index(args, "-o")
		if i < 0 || i+1 == len(args) || !path.IsAbs(args[i+1]) {
			t.Fatalf("build stage: %q: want -o /absolute/path", cmd)
		}
		args[i+1] = filepath.Join(root, args[i+1])
		build := exec.Command("go", args...)
		build.Dir = testutil.RepoRoot(t)
		build.Env = append(os.Environ(), envList(env)...)
		build.Env = append(build.Env, "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build stage: %q: %v\n%s", cmd, err, out)
		}
	default:
		t.Fatalf("build stage: cannot run %q here (only go build -o, mkdir -p and go mod download)", cmd)
	}
}

func envList(env map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// imageBuilder assembles a stage onto an empty base: each COPY and WORKDIR
// is a layer, the rest goes into the config.
type imageBuilder struct {
	context string            // the build context (COPY without --from)
	stages  map[string]string // stage name → its filesystem (runBuildStage)
	layers  *layerCache
	img     v1.Image
	cfg     v1.Config
	dirs    map[string]bool // directories the layers so far create
	workdir string
	cmdSet  bool
}

// buildImage builds the stage as BuildKit would, for the instructions a
// final stage on a shell-less base can have; others are refused.
func buildImage(s *instructions.Stage, context string, stages map[string]string, layers *layerCache) (v1.Image, error) {
	oci := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	b := &imageBuilder{context: context, stages: stages, layers: layers, img: oci, dirs: map[string]bool{"/": true}, workdir: "/"}
	// As BuildKit does for a base without one (distroless has its own).
	b.cfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, c := range s.Commands {
		if err := b.apply(c); err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
	}
	cf, err := b.img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", runtime.GOARCH, v1.Time{Time: layerTime}
	cf.Config = b.cfg
	return mutate.ConfigFile(b.img, cf)
}

func (b *imageBuilder) apply(c instructions.Command) error {
	switch c := c.(type) {
	case *instructions.CopyCommand:
		return b.copy(c)
	case *instructions.WorkdirCommand:
		b.workdir = b.abs(c.Path)
		b.cfg.WorkingDir = b.workdir
		var tw layerWriter
		b.parents(&tw, path.Join(b.workdir, "x"))
		return b.append(&tw, c.String())
	case *instructions.UserCommand:
		b.cfg.User = c.User
	case *instructions.ExposeCommand:
		if b.cfg.ExposedPorts == nil {
			b.cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range c.Ports {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			b.cfg.ExposedPorts[p] = struct{}{}
		}
	case *instructions.VolumeCommand:
		if b.cfg.Volumes == nil {
			b.cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			b.cfg.Volumes[v] = struct{}{}
		}
	case *instructions.EntrypointCommand:
		b.cfg.Entrypoint = execForm(c.CmdLine, c.PrependShell)
		if !b.cmdSet { // ENTRYPOINT resets an inherited CMD
			b.cfg.Cmd = nil
		}
	case *instructions.CmdCommand:
		b.cfg.Cmd, b.cmdSet = execForm(c.CmdLine, c.PrependShell), true
	case *instructions.HealthCheckCommand:
		h := c.Health
		if h.StartInterval != 0 {
			return errors.New("--start-interval: not in go-containerregistry's HealthConfig")
		}
		b.cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			b.cfg.Env = slices.DeleteFunc(b.cfg.Env, func(e string) bool { return strings.HasPrefix(e, kv.Key+"=") })
			b.cfg.Env = append(b.cfg.Env, kv.Key+"="+kv.Value)
		}
	case *instructions.LabelCommand:
		if b.cfg.Labels == nil {
			b.cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			b.cfg.Labels[kv.Key] = kv.Value
		}
	default:
		return errors.New("not supported by the daemonless build (no RUN or ADD on a base without a shell; ARG expansion is not done)")
	}
	return nil
}

// execForm is what Docker stores for ENTRYPOINT/CMD/RUN: shell form runs
// through /bin/sh, which a distroless or empty image does not have.
func execForm(cmdLine []string, prependShell bool) []string {
	if prependShell {
		return []string{"/bin/sh", "-c", strings.Join(cmdLine, " ")}
	}
	return slices.Clone(cmdLine)
}

func (b *imageBuilder) abs(p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(b.workdir, p)
}

// copy adds a layer with what COPY puts in the image: a file to the
// destination (or into it, when it ends in "/" or there are several
// sources), a directory's contents into the destination; owned by --chown
// (numeric: there is no /etc/passwd to resolve names in) or root, with the
// source's permission bits or --chmod. Parent directories it creates are
// root's, 0755.
func (b *imageBuilder) copy(c *instructions.CopyCommand) error {
	if c.Parents || len(c.ExcludePatterns) > 0 {
		return errors.New("--parents and --exclude are not supported")
	}
	from := b.context
	if c.From != "" {
		var ok bool
		if from, ok = b.stages[c.From]; !ok {
			return fmt.Errorf("--from=%s: no such stage (images cannot be pulled here)", c.From)
		}
	}
	uid, gid, err := parseOwner(c.Chown)
	if err != nil {
		return fmt.Errorf("--chown: %w", err)
	}
	var chmod int64 = -1
	if c.Chmod != "" {
		if chmod, err = strconv.ParseInt(c.Chmod, 8, 32); err != nil {
			return fmt.Errorf("--chmod=%s: want octal", c.Chmod)
		}
	}
	dest := b.abs(c.DestPath)
	into := strings.HasSuffix(c.DestPath, "/") || len(c.SourcePaths) > 1
	var tw layerWriter
	for _, src := range c.SourcePaths {
		if strings.ContainsAny(src, "*?[") {
			return fmt.Errorf("%s: wildcards are not supported", src)
		}
		host := filepath.Join(from, filepath.FromSlash(src))
		fi, err := os.Stat(host)
		if err != nil {
			return err
		}
		target := dest
		if !fi.IsDir() && (into || b.dirs[dest]) {
			target = path.Join(dest, path.Base(src))
		}
		b.parents(&tw, target)
		err = filepath.WalkDir(host, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(host, p)
			name := path.Join(target, filepath.ToSlash(rel))
			info, err := e.Info()
			if err != nil {
				return err
			}
			mode := int64(info.Mode().Perm())
			if chmod >= 0 {
				mode = chmod
			}
			if e.IsDir() {
				b.dirs[name] = true
				return tw.dir(name, mode, uid, gid)
			}
			if !info.Mode().IsRegular() {
				return fmt.Errorf("%s: not a regular file", p)
			}
			return tw.file(name, p, mode, uid, gid)
		})
		if err != nil {
			return err
		}
	}
	return b.append(&tw, c.String())
}

// parents adds the directories above name that no layer has created yet.
func (b *imageBuilder) parents(tw *layerWriter, name string) {
	var missing []string
	for d := path.Dir(name); !b.dirs[d]; d = path.Dir(d) {
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		b.dirs[d] = true
		tw.dir(d, 0o755, 0, 0) //nolint:errcheck // the error is kept in tw and returned by append
	}
}

func (b *imageBuilder) append(tw *layerWriter, createdBy string) error {
	data, err := tw.bytes()
	if err != nil {
		return err
	}
	layer, err := b.layers.get(data)
	if err != nil {
		return err
	}
	b.img, err = mutate.Append(b.img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: createdBy, Created: v1.Time{Time: layerTime}}})
	return err
}

// layerCache holds layers by content, so that builds of the same files
// (the binary, the landing page) gzip them once.
type layerCache struct {
	mu     sync.Mutex
	layers map[[sha256.Size]byte]v1.Layer // guarded by mu
}

func (lc *layerCache) get(tarData []byte) (v1.Layer, error) {
	key := sha256.Sum256(tarData)
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if l, ok := lc.layers[key]; ok {
		return l, nil
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	if lc.layers == nil {
		lc.layers = map[[sha256.Size]byte]v1.Layer{}
	}
	lc.layers[key] = l
	return l, nil
}

// parseOwner parses a numeric "uid[:gid]" (empty: root).
func parseOwner(s string) (uid, gid int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	u, g, ok := strings.Cut(s, ":")
	if uid, err = strconv.Atoi(u); err != nil {
		return 0, 0, fmt.Errorf("%q: want numeric uid[:gid]", s)
	}
	if !ok {
		return uid, uid, nil
	}
	if gid, err = strconv.Atoi(g); err != nil {
		return 0, 0, fmt.Errorf("%q: want numeric uid[:gid]", s)
	}
	return uid, gid, nil
}

// layerWriter is an uncompressed layer tar in memory; the first error
// sticks.
type layerWriter struct {
	buf bytes.Buffer
	tw  *tar.Writer
	err error
}

func (l *layerWriter) header(h *tar.Header) error {
	if l.tw == nil {
		l.tw = tar.NewWriter(&l.buf)
	}
	if l.err == nil {
		h.Name = strings.TrimPrefix(h.Name, "/")
		h.ModTime, h.Format = layerTime, tar.FormatPAX
		l.err = l.tw.WriteHeader(h)
	}
	return l.err
}

func (l *layerWriter) dir(name string, mode int64, uid, gid int) error {
	return l.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid})
}

func (l *layerWriter) file(name, src string, mode int64, uid, gid int) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if l.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(data))}) == nil {
		_, l.err = l.tw.Write(data)
	}
	return l.err
}

func (l *layerWriter) bytes() ([]byte, error) {
	if l.tw == nil {
		l.tw = tar.NewWriter(&l.buf)
	}
	if l.err == nil {
		l.err = l.tw.Close()
	}
	return l.buf.Bytes(), l.err
}

// writeLayout writes img as an OCI image layout at dir (tagged ref, as
// `skopeo copy oci:DIR:REF` names it) and reads it back from there.
func writeLayout(dir, ref string, img v1.Image) (v1.Image, error) {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s: %d manifests, want 1", dir, len(m.Manifests))
	}
	back, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	// Digests and diff IDs of the blobs agree with the manifest and config.
	return back, validate.Image(back)
}
