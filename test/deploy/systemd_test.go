package deploy_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse/internal/testutil"
)

const unitPath = "deploy/systemd/gatehouse.service"

// unitDirectives reads a unit file: "Section.Key" → values in order.
func unitDirectives(src string) map[string][]string {
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
		default:
			k, v, _ := strings.Cut(line, "=")
			out[section+"."+strings.TrimSpace(k)] = append(out[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return out
}

// pidFile is where the unit's Gatehouse writes its PID, in its
// RuntimeDirectory: systemd follows the main process through it across a
// zero-downtime upgrade (docs/operations.md, "Under systemd").
const pidFile = "/run/gatehouse/gatehouse.pid"

// checkUnit: the hardening the unit promises, and the upgrade setup
// (docs/operations.md).
func checkUnit(src string) []string {
	d := unitDirectives(src)
	var errs []string
	want := map[string]string{
		"Service.DynamicUser":            "yes",
		"Service.AmbientCapabilities":    "CAP_NET_BIND_SERVICE",
		"Service.CapabilityBoundingSet":  "CAP_NET_BIND_SERVICE",
		"Service.NoNewPrivileges":        "yes",
		"Service.ProtectSystem":          "strict",
		"Service.ProtectHome":            "yes",
		"Service.PrivateTmp":             "yes",
		"Service.StateDirectory":         "gatehouse",
		"Service.ConfigurationDirectory": "gatehouse",
		"Service.ExecReload":             "/bin/kill -HUP $MAINPID",
		"Service.Restart":                "on-failure",
		"Service.LimitNOFILE":            "65536",
		"Service.RuntimeDirectory":       "gatehouse",
		"Service.PIDFile":                pidFile,
		"Service.ExecStart":              imageBinary + " run -c ${CONFIGURATION_DIRECTORY}/gatehouse.yaml -pid-file " + pidFile,
		"Install.WantedBy":               "multi-user.target",
	}
	for k, v := range want {
		got := d[k]
		if len(got) == 0 || got[len(got)-1] != v {
			errs = append(errs, fmt.Sprintf("%s: %s=%q, want %q", unitPath, k, got, v))
		}
	}
	// StateDirectory=gatehouse is the image's state volume path.
	if "/var/lib/"+d["Service.StateDirectory"][0] != stateDir {
		errs = append(errs, "StateDirectory is not "+stateDir)
	}
	return errs
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), unitPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range checkUnit(string(src)) {
		t.Error(e)
	}
	for _, tc := range []struct{ old, new string }{
		{"ProtectSystem=strict", "ProtectSystem=full"},
		{"DynamicUser=yes\n", ""},
		{"ExecReload=/bin/kill -HUP $MAINPID", "ExecReload=/bin/kill -USR1 $MAINPID"},
		{"PIDFile=/run/gatehouse/gatehouse.pid", "PIDFile=/run/gatehouse.pid"},
		{"gatehouse.yaml -pid-file /run/gatehouse/gatehouse.pid", "gatehouse.yaml"},
		{"RuntimeDirectory=gatehouse\n", ""},
	} {
		if len(checkUnit(strings.Replace(string(src), tc.old, tc.new, 1))) == 0 {
			t.Errorf("a unit with %q instead of %q passes", tc.new, tc.old)
		}
	}
}

// systemd's own checks: `systemd-analyze verify` (syntax, every directive
// known and well-formed) and `systemd-analyze security` (the exposure
// score of the sandboxing, at most 2.0 of 10: "OK"). Both print warnings
// and exit 0 for a misspelt directive, so any output is a failure.
func TestSystemdAnalyze(t *testing.T) {
	t.Parallel()
	sa := testutil.NeedTool(t, "systemd-analyze", "systemd")
	src, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), unitPath))
	if err != nil {
		t.Fatal(err)
	}
	verify := func(t *testing.T, unit string) (string, error) {
		// verify wants the executables to exist: a stand-in at a temporary
		// path replaces /usr/local/bin/gatehouse.
		dir := t.TempDir()
		stub := filepath.Join(dir, "gatehouse")
		if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "gatehouse.service")
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, imageBinary, stub)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", p).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(t, string(src)); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := verify(t, strings.Replace(string(src), "ProtectSystem=", "ProtectSystm=", 1)); err == nil && out == "" {
		t.Error("systemd-analyze verify passes a misspelt directive: the check is blind")
	}

	dir := t.TempDir()
	p := filepath.Join(dir, "gatehouse.service")
	// --threshold is in tenths: 20 is an exposure of 2.0.
	security := func(unit string) ([]byte, error) {
		if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		return exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", p).CombinedOutput()
	}
	if out, err := security(string(src)); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
	// Without the system call filter alone the score is over the line.
	var weaker []string
	for line := range strings.Lines(string(src)) {
		if !strings.HasPrefix(line, "SystemCall") {
			weaker = append(weaker, line)
		}
	}
	if _, err := security(strings.Join(weaker, "")); err == nil {
		t.Error("systemd-analyze security passes the unit without SystemCallFilter: the threshold is too lax")
	}
}
