//go:build integration

// Package turbo runs the README's turbo.json with the real turbo CLI (the
// npm package pinned in this directory: npm ci --prefix test/turbo) over a
// throwaway monorepo that holds this repository as apps/gatehouse. It needs
// no network: Go modules come from the local module cache (GOPROXY=off).
package turbo

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gatehouse/internal/testutil"
)

func TestTurboBuildsGatehouse(t *testing.T) {
	root := testutil.RepoRoot(t)
	turbo := filepath.Join(root, "test", "turbo", "node_modules", ".bin", "turbo")
	if _, err := os.Stat(turbo); err != nil {
		msg := "turbo not installed: run `npm ci --prefix test/turbo`"
		if os.Getenv("GATEHOUSE_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	npm := testutil.NeedTool(t, "npm", "npm") // turbo runs the package's scripts with it

	mono := t.TempDir()
	writeMonorepo(t, root, mono, npmVersion(t, npm))
	goEnv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	env := append(os.Environ(),
		"TURBO_TELEMETRY_DISABLED=1", "TURBO_NO_UPDATE_NOTIFIER=1", "DO_NOT_TRACK=1",
		"GOPROXY=off", // passed through: nothing is fetched (a module missing from the cache fails the build)
		"GOCACHE="+goEnv("GOCACHE"), "GOMODCACHE="+goEnv("GOMODCACHE"))
	run := func(version string, args ...string) string {
		t.Helper()
		cmd := exec.Command(turbo, args...)
		cmd.Dir = mono
		// GOFLAGS is hashed and passed: the binary's version says it arrived.
		cmd.Env = append(env, "GOFLAGS=-buildvcs=false -ldflags=-X=main.version="+version)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("turbo %s: %v\n%s", strings.Join(args, " "), err, &out)
		}
		return out.String()
	}
	bin := filepath.Join(mono, "apps", "gatehouse", "bin", "gatehouse")
	version := func() string {
		t.Helper()
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("bin/gatehouse version: %v", err)
		}
		return string(out)
	}

	out := run("turbo-one", "run", "build", "--filter=gatehouse")
	if v := version(); !strings.HasPrefix(v, "gatehouse turbo-one ") {
		t.Fatalf("bin/gatehouse version = %q, want turbo-one (GOFLAGS passed to go build)\n%s", v, out)
	}
	// Same inputs: restored from turbo's cache.
	if out := run("turbo-one", "run", "build", "--filter=gatehouse"); !strings.Contains(out, "cache hit") {
		t.Errorf("second build was not a cache hit:\n%s", out)
	}
	// Another GOFLAGS is another build, not the cached binary.
	out = run("turbo-two", "run", "build", "--filter=gatehouse")
	if v := version(); !strings.HasPrefix(v, "gatehouse turbo-two ") || !strings.Contains(out, "cache miss") {
		t.Fatalf("after a GOFLAGS change bin/gatehouse version = %q, want turbo-two from a cache miss\n%s", v, out)
	}

	// The test task (not run: it is the whole suite) in strict env mode:
	// the Go variables reach it, hashed or passed through.
	var dry struct {
		EnvMode           string `json:"envMode"`
		GlobalCacheInputs struct {
			EnvironmentVariables envVars `json:"environmentVariables"`
		} `json:"globalCacheInputs"`
		Tasks []struct {
			TaskID               string  `json:"taskId"`
			EnvMode              string  `json:"envMode"`
			Command              string  `json:"command"`
			EnvironmentVariables envVars `json:"environmentVariables"`
		} `json:"tasks"`
	}
	out = run("turbo-one", "run", "test", "--filter=gatehouse", "--dry-run=json")
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &dry); err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if len(dry.Tasks) != 1 || dry.Tasks[0].TaskID != "gatehouse#test" || dry.Tasks[0].EnvMode != "strict" || dry.EnvMode != "strict" {
		t.Fatalf("dry run: %+v", dry)
	}
	if dry.Tasks[0].Command != "bash scripts/test-all.sh" {
		t.Errorf("test task runs %q", dry.Tasks[0].Command)
	}
	global := dry.GlobalCacheInputs.EnvironmentVariables
	for _, v := range []string{"GOPROXY", "GOCACHE", "GOMODCACHE", "GOPATH"} {
		if !slices.Contains(global.Specified.PassThroughEnv, v) {
			t.Errorf("%s is not passed through (globalPassThroughEnv %v)", v, global.Specified.PassThroughEnv)
		}
	}
	for _, v := range []string{"GOPROXY", "GOCACHE", "GOMODCACHE"} {
		if !hasVar(global.Passthrough, v) {
			t.Errorf("%s is set but not passed to the task: %v", v, global.Passthrough)
		}
	}
	task := dry.Tasks[0].EnvironmentVariables
	if !slices.Contains(task.Specified.Env, "GOFLAGS") || !slices.Contains(task.Specified.Env, "CGO_ENABLED") || !hasVar(task.Configured, "GOFLAGS") {
		t.Errorf("test task env: %+v", task)
	}
}

type envVars struct {
	Specified struct {
		Env            []string `json:"env"`
		PassThroughEnv []string `json:"passThroughEnv"`
	} `json:"specified"`
	Configured  []string `json:"configured"`  // NAME=hash, set and hashed
	Passthrough []string `json:"passthrough"` // NAME=hash, set and passed
}

func hasVar(list []string, name string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.HasPrefix(s, name+"=") })
}

// readmeTurboJSON is the turbo.json the README gives, in its Turborepo
// section.
func readmeTurboJSON(t *testing.T, root string) []byte {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## In a Turborepo\n")
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindStringSubmatch(section)
	if !ok || m == nil {
		t.Fatal("README.md has no ```json block in its \"In a Turborepo\" section")
	}
	if !json.Valid([]byte(m[1])) {
		t.Fatalf("README's turbo.json is not JSON:\n%s", m[1])
	}
	return []byte(m[1])
}

// writeMonorepo lays out an npm workspace at dir: the README's turbo.json,
// a root package.json and lockfile, and a copy of the repository at root
// as apps/gatehouse (without node_modules, build output or VCS data).
func writeMonorepo(t *testing.T, root, dir, npmVersion string) {
	t.Helper()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("turbo.json", readmeTurboJSON(t, root))
	write(".gitignore", []byte("node_modules/\n.turbo/\n")) // as create-turbo writes it: turbo's logs are no input
	write("package.json", []byte(`{"name": "monorepo", "private": true, "packageManager": "npm@`+npmVersion+`", "workspaces": ["apps/*"]}`+"\n"))
	// What npm install writes for this workspace (no registry packages).
	write("package-lock.json", []byte(`{"name": "monorepo", "lockfileVersion": 3, "requires": true, "packages": {
  "": {"name": "monorepo", "workspaces": ["apps/*"]},
  "apps/gatehouse": {"name": "gatehouse", "version": "0.1.0"},
  "node_modules/gatehouse": {"resolved": "apps/gatehouse", "link": true}}}
`))
	dst := filepath.Join(dir, "apps", "gatehouse")
	skip := map[string]bool{".git": true, "node_modules": true, ".next": true, ".turbo": true, "artifacts": true}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() && (skip[d.Name()] || rel == "bin") {
			return filepath.SkipDir
		}
		if rel == "gatehouse" && !d.IsDir() { // a `go build` left in the checkout
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy the repository: %v", err)
	}
}

func npmVersion(t *testing.T, npm string) string {
	t.Helper()
	out, err := exec.Command(npm, "--version").Output()
	v := strings.TrimSpace(string(out))
	var ee *exec.ExitError
	if errors.As(err, &ee) || err != nil || v == "" {
		t.Fatalf("npm --version: %v %s", err, out)
	}
	return v
}
