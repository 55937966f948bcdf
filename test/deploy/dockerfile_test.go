// Package deploy_test checks the deployment files (Dockerfile,
// .dockerignore, deploy/compose.yaml, the systemd unit and the Kubernetes
// manifests) without the tools that would run them: no Docker daemon or
// cluster runs where these tests do. The Dockerfile is read with BuildKit's
// own parser and linter (the code `docker build` runs), the ignore file
// with the matcher the Docker CLI and BuildKit use, and every config that
// ships in a deployment file is validated as `gatehouse validate` does.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
	"gatehouse/internal/testutil"
)

// What the deployment files agree on; each test checks one file against
// these, so a change to one place that the others do not follow fails.
const (
	imageConfig  = "/etc/gatehouse/gatehouse.yaml" // the config path in the image
	imageBinary  = "/usr/local/bin/gatehouse"
	stateDir     = "/var/lib/gatehouse" // the volume: ACME storage and other state
	imageUID     = 65532                // distroless's nonroot
	configSource = "deploy/gatehouse.yaml"
)

// dockerfile is the parsed Dockerfile.
type dockerfile struct {
	stages []instructions.Stage
	args   []instructions.ArgCommand
}

// final is the stage the image is made of.
func (d *dockerfile) final() *instructions.Stage { return &d.stages[len(d.stages)-1] }

func commands[T instructions.Command](s *instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if t, ok := c.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// parseDockerfile parses src with BuildKit's parser and turns it into
// stages with its instruction parser, with every rule of its linter (the
// checks of `docker build --check`) that runs at parse time reported as
// an error.
func parseDockerfile(t *testing.T, src []byte) (*dockerfile, []string) {
	t.Helper()
	var problems []string
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		problems = append(problems, fmt.Sprintf("line %d: %s", w.Location.Start.Line, w.Short))
	}
	lint := linter.New(&linter.Config{ExperimentalAll: true, Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, args, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return &dockerfile{stages: stages, args: args}, problems
}

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	d, problems := parseDockerfile(t, src)
	for _, p := range problems {
		t.Errorf("Dockerfile: %s", p)
	}
	return d
}

// checkDockerfile returns every way d falls short of what the image must
// be; goVersion is go.mod's go directive.
func checkDockerfile(d *dockerfile, goVersion string) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if len(d.stages) < 2 {
		return []string{fmt.Sprintf("%d stage(s): want a build stage and a final stage", len(d.stages))}
	}
	names := map[string]bool{}
	for _, s := range d.stages {
		if !names[s.BaseName] {
			ref, tag := splitImage(s.BaseName)
			switch {
			case ref == "scratch":
			case tag == "" || tag == "latest":
				bad("FROM %s: pin a version (no tag or latest)", s.BaseName)
			}
		}
		if s.Name != "" {
			names[s.Name] = true
		}
	}

	// The build stage: the module's Go version, a static, reproducible build.
	build := &d.stages[0]
	if ref, tag := splitImage(build.BaseName); ref != "golang" || !strings.HasPrefix(tag, goVersion) {
		bad("build stage FROM %s: want golang:%s-… (go.mod's go directive)", build.BaseName, goVersion)
	}
	var buildRun string
	for _, r := range commands[*instructions.RunCommand](build) {
		if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "go build") {
			buildRun = line
		}
	}
	env := map[string]string{}
	for _, e := range commands[*instructions.EnvCommand](build) {
		for _, kv := range e.Env {
			env[kv.Key] = kv.Value
		}
	}
	switch {
	case buildRun == "":
		bad("build stage: no RUN go build")
	default:
		if env["CGO_ENABLED"] != "0" && !strings.Contains(buildRun, "CGO_ENABLED=0") {
			bad("go build without CGO_ENABLED=0: the final image has no C library")
		}
		for _, flag := range []string{"-trimpath", "-X main.version="} {
			if !strings.Contains(buildRun, flag) {
				bad("go build without %s (see the Makefile's build target)", flag)
			}
		}
		if !strings.Contains(buildRun, "./cmd/gatehouse") {
			bad("go build does not build ./cmd/gatehouse")
		}
	}

	// The final stage.
	final := d.final()
	if ref, _ := splitImage(final.BaseName); ref != "gcr.io/distroless/static-debian12" && ref != "scratch" {
		bad("final stage FROM %s: want distroless static or scratch", final.BaseName)
	}
	users := commands[*instructions.UserCommand](final)
	if len(users) == 0 {
		bad("final stage: no USER (it would run as root)")
	} else if u := users[len(users)-1].User; u != fmt.Sprintf("%d:%d", imageUID, imageUID) {
		bad("final stage USER %q: want %d:%d (numeric, so Kubernetes' runAsNonRoot can check it)", u, imageUID, imageUID)
	}
	copies := map[string]*instructions.CopyCommand{} // by destination
	for _, c := range commands[*instructions.CopyCommand](final) {
		copies[c.DestPath] = c
	}
	if c := copies[imageBinary]; c == nil || c.From != build.Name {
		bad("final stage: no COPY --from=%s of the binary to %s", build.Name, imageBinary)
	}
	if c := copies[imageConfig]; c == nil || c.From != "" || !slices.Equal(c.SourcePaths, []string{configSource}) {
		bad("final stage: no COPY %s %s", configSource, imageConfig)
	}
	if c := copies[stateDir]; c == nil || c.Chown != fmt.Sprintf("%d:%d", imageUID, imageUID) {
		bad("final stage: %s is not created owned by %d (a new volume copies the owner; the user must write ACME storage there)", stateDir, imageUID)
	}
	var volumes, ports []string
	for _, v := range commands[*instructions.VolumeCommand](final) {
		volumes = append(volumes, v.Volumes...)
	}
	if !slices.Contains(volumes, stateDir) {
		bad("final stage: VOLUME %v, want %s (ACME storage)", volumes, stateDir)
	}
	for _, e := range commands[*instructions.ExposeCommand](final) {
		ports = append(ports, e.Ports...)
	}
	for _, p := range []string{"6188", "9901"} { // server.listen and admin.listen of deploy/gatehouse.yaml
		if !slices.Contains(ports, p) {
			bad("final stage: EXPOSE %v lacks %s", ports, p)
		}
	}
	var entry, cmd []string
	for _, e := range commands[*instructions.EntrypointCommand](final) {
		if e.PrependShell {
			bad("ENTRYPOINT in shell form: the image has no shell")
		}
		entry = e.CmdLine
	}
	for _, c := range commands[*instructions.CmdCommand](final) {
		if c.PrependShell {
			bad("CMD in shell form: the image has no shell")
		}
		cmd = c.CmdLine
	}
	if got, want := append(slices.Clone(entry), cmd...), []string{imageBinary, "run", "-c", imageConfig}; !slices.Equal(got, want) {
		bad("ENTRYPOINT + CMD = %q, want %q", got, want)
	}
	hc := commands[*instructions.HealthCheckCommand](final)
	if len(hc) == 0 {
		bad("final stage: no HEALTHCHECK")
	} else if h := hc[len(hc)-1].Health; len(h.Test) < 3 || h.Test[0] != "CMD" || h.Test[1] != imageBinary || h.Test[2] != "healthcheck" ||
		!slices.Contains(h.Test, imageConfig) {
		bad("HEALTHCHECK %q: want [CMD %s healthcheck -c %s] (exec form: no shell)", h.Test, imageBinary, imageConfig)
	}
	return errs
}

// splitImage splits "name:tag" (or "name@digest", whose "tag" is the digest).
func splitImage(ref string) (name, tag string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

func goDirective(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod: no go directive")
	return ""
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	for _, e := range checkDockerfile(loadDockerfile(t), goDirective(t)) {
		t.Error(e)
	}
}

// The checks catch what they are for: each of these Dockerfiles breaks one
// property and must be refused for it.
func TestDockerfileChecksRefuse(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := goDirective(t)
	tests := []struct {
		name, old, new, want string
	}{
		{"root user", "USER 65532:65532", "USER root", "USER"},
		{"no user", "USER 65532:65532\n", "", "no USER"},
		{"latest base", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM gcr.io/distroless/static-debian12:latest", "pin a version"},
		{"untagged base", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM gcr.io/distroless/static-debian12", "pin a version"},
		{"cgo on", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"no trimpath", "-trimpath ", "", "-trimpath"},
		{"no version", "-X main.version=${VERSION}", "", "main.version"},
		{"other go", "FROM golang:" + goVersion, "FROM golang:1.21", "go directive"},
		{"no volume", "VOLUME [\"/var/lib/gatehouse\"]\n", "", "VOLUME"},
		{"state owned by root", "COPY --from=build --chown=65532:65532 /out/state", "COPY --from=build /out/state", "owned by"},
		{"admin port hidden", "EXPOSE 6188 9901", "EXPOSE 6188", "lacks 9901"},
		{"config elsewhere", "COPY deploy/gatehouse.yaml /etc/gatehouse/gatehouse.yaml", "COPY deploy/gatehouse.yaml /gatehouse.yaml", "no COPY deploy/gatehouse.yaml"},
		{"shell form", `CMD ["run", "-c", "/etc/gatehouse/gatehouse.yaml"]`, "CMD run -c /etc/gatehouse/gatehouse.yaml", "shell form"},
		{"healthcheck gone", "HEALTHCHECK ", "# HEALTHCHECK ", "HEALTHCHECK"},
		{"single stage", "FROM gcr.io/distroless/static-debian12:nonroot\n", "", "stage(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !bytes.Contains(src, []byte(tc.old)) {
				t.Fatalf("the Dockerfile no longer contains %q: update this case", tc.old)
			}
			mutated := bytes.Replace(src, []byte(tc.old), []byte(tc.new), 1)
			d, problems := parseDockerfile(t, mutated)
			errs := append(problems, checkDockerfile(d, goVersion)...)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("not refused for %q; problems: %q", tc.want, errs)
			}
		})
	}
	// The linter is on: a lint rule (FROM and AS in different cases).
	d, problems := parseDockerfile(t, bytes.Replace(src, []byte(" AS build"), []byte(" as build"), 1))
	_ = d
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "FromAsCasing") }) {
		t.Errorf("the BuildKit linter did not report FromAsCasing: %q", problems)
	}
}

// dockerignore is the build context as `docker build .` sends it.
type dockerignore struct {
	root string
	pm   *patternmatcher.PatternMatcher
}

func loadDockerignore(t *testing.T, root string, src []byte) *dockerignore {
	t.Helper()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(src))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return &dockerignore{root: root, pm: pm}
}

// sent reports whether the file at rel (slash-separated, relative to the
// context) is in the build context.
func (di *dockerignore) sent(rel string) bool {
	excluded, err := di.pm.MatchesOrParentMatches(rel)
	return err == nil && !excluded
}

// copied returns the context files a COPY source sends (a file, or the
// files under a directory), and an error when there are none.
func (di *dockerignore) copied(src string) ([]string, error) {
	full := filepath.Join(di.root, filepath.FromSlash(src))
	fi, err := os.Stat(full)
	if err != nil {
		return nil, err
	}
	var files []string
	if !fi.IsDir() {
		if di.sent(src) {
			files = append(files, src)
		}
	} else {
		err = filepath.WalkDir(full, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(di.root, p)
			if rel = filepath.ToSlash(rel); di.sent(rel) {
				files = append(files, rel)
			}
			return nil
		})
	}
	if err == nil && len(files) == 0 {
		err = errors.New("excluded by .dockerignore")
	}
	return files, err
}

// Every COPY from the build context names something that exists and that
// .dockerignore lets through, and the build stage's COPYs bring every file
// `go build ./cmd/gatehouse` reads (per `go list`), and nothing it needs is
// ignored.
func TestDockerContext(t *testing.T) {
	t.Parallel()
	root := testutil.RepoRoot(t)
	d := loadDockerfile(t)
	src, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	di := loadDockerignore(t, root, src)
	inBuild := map[string]bool{} // context files the build stage copies
	for i, s := range d.stages {
		for _, c := range commands[*instructions.CopyCommand](&s) {
			if c.From != "" {
				continue
			}
			for _, p := range c.SourcePaths {
				files, err := di.copied(p)
				if err != nil {
					t.Errorf("stage %d: COPY %s: %v", i, p, err)
				}
				if i == 0 {
					for _, f := range files {
						inBuild[f] = true
					}
				}
			}
		}
	}
	needed := []string{"go.mod", "go.sum"}
	list := exec.Command("go", "list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles", "./cmd/gatehouse")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p struct {
			Dir                 string
			Module              *struct{ Path string }
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "gatehouse" {
			continue
		}
		rel, _ := filepath.Rel(root, p.Dir)
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			needed = append(needed, path.Join(filepath.ToSlash(rel), f))
		}
	}
	if len(needed) < 50 {
		t.Fatalf("go list found %d files of the module; expected the whole build", len(needed))
	}
	for _, f := range needed {
		if !inBuild[f] {
			t.Errorf("%s: go build ./cmd/gatehouse reads it, but the build stage does not get it (COPY or .dockerignore)", f)
		}
	}

	// And the context is small: tests, docs, node_modules and .git stay out.
	for _, f := range []string{".git/HEAD", "README.md", "test/deploy/dockerfile_test.go", "internal/app/app_test.go",
		"test/e2e/nextapp/package.json", "bench/run.sh", "docs/config.md"} {
		if di.sent(f) {
			t.Errorf("%s is sent in the build context", f)
		}
	}
}

// The ignore-file check is not vacuous: rules that drop a needed file fail.
func TestDockerContextRefuses(t *testing.T) {
	t.Parallel()
	root := testutil.RepoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rule, src string }{
		{"www", "www"},
		{"deploy", "deploy/gatehouse.yaml"},
		{"**/*.yaml", "deploy/gatehouse.yaml"},
	} {
		di := loadDockerignore(t, root, append(slices.Clone(src), []byte("\n"+tc.rule+"\n")...))
		if _, err := di.copied(tc.src); err == nil {
			t.Errorf("with %q in .dockerignore, COPY %s still passes", tc.rule, tc.src)
		}
	}
	if _, err := loadDockerignore(t, root, src).copied("no/such/file"); err == nil {
		t.Error("a COPY of a missing file passes")
	}
}

// imagePaths maps the final stage's COPYs from the build context (image
// path → context path), so a config that names image paths can be
// validated against the repository.
func imagePaths(t *testing.T, d *dockerfile) map[string]string {
	t.Helper()
	root := testutil.RepoRoot(t)
	m := map[string]string{}
	for _, c := range commands[*instructions.CopyCommand](d.final()) {
		if c.From == "" && len(c.SourcePaths) == 1 {
			m[strings.TrimSuffix(c.DestPath, "/")] = filepath.Join(root, filepath.FromSlash(c.SourcePaths[0]))
		}
	}
	return m
}

// validateInImage validates a config the way `gatehouse validate` does, as
// if it sat at imageConfig in the image: paths the image provides (from
// the Dockerfile's COPYs) are read from the repository.
func validateInImage(t *testing.T, name string, data []byte) *config.Document {
	t.Helper()
	d := loadDockerfile(t)
	text := string(data)
	for dst, src := range imagePaths(t, d) {
		text = strings.ReplaceAll(text, dst, src)
	}
	doc, err := config.Parse(name, []byte(text), t.TempDir()+"/")
	if err == nil {
		_, err = compile.Compile(doc, runtime.NewRegistry(nil, nil), 0)
	}
	if err != nil {
		t.Fatalf("%s does not validate in the image: %v", name, err)
	}
	return doc
}

// The config the image ships validates there, and listens where the
// image's EXPOSE says.
func TestImageConfig(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), configSource))
	if err != nil {
		t.Fatal(err)
	}
	doc := validateInImage(t, configSource, data)
	checkListeners(t, configSource, doc)
}

// checkListeners: the proxy on 6188 and the admin listener on 9901 (the
// ports the Dockerfile exposes and the manifests name), on every address
// of the container, so probes from outside reach it.
func checkListeners(t *testing.T, name string, doc *config.Document) {
	t.Helper()
	if got := doc.Config.Server.Listen; !slices.Equal(got, []string{":6188"}) {
		t.Errorf("%s: server.listen %q, want [\":6188\"]", name, got)
	}
	if got := doc.Config.Admin.Listen; got != ":9901" {
		t.Errorf("%s: admin.listen %q, want \":9901\" (loopback is unreachable from outside the container)", name, got)
	}
}

func portOf(t *testing.T, listen string) int {
	t.Helper()
	i := strings.LastIndexByte(listen, ':')
	p, err := strconv.Atoi(listen[i+1:])
	if err != nil {
		t.Fatalf("listen %q: no port", listen)
	}
	return p
}
