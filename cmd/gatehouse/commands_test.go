package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestHelpAndUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // substrings
		wantStderr []string
		notStdout  []string
	}{
		{name: "no command", args: nil, wantCode: 2,
			wantStderr: []string{"usage: gatehouse <command>", "\n  run       serve with a config file\n", "\n  version   print the version\n"}},
		{name: "help lists commands", args: []string{"help"}, wantCode: 0,
			wantStdout: []string{"\n  run       serve with a config file\n", "\n  validate  check a config file", "\n  demo      ", "\n  help      "},
			notStdout:  []string{"-c file", "-listen"}},
		{name: "--help", args: []string{"--help"}, wantCode: 0, wantStdout: []string{"\n  demo      the shipped routes"}},
		{name: "-h", args: []string{"-h"}, wantCode: 0, wantStdout: []string{"\n  validate  "}},
		{name: "run --help lists only run's flags", args: []string{"run", "--help"}, wantCode: 0,
			wantStdout: []string{"usage: gatehouse run [-c FILE]\n", "  -c file\n", `config file (default "gatehouse.yaml")`},
			notStdout:  []string{"-listen", "check a config"}},
		{name: "run -h", args: []string{"run", "-h"}, wantCode: 0, wantStdout: []string{"usage: gatehouse run [-c FILE]\n"}},
		{name: "demo --help", args: []string{"demo", "--help"}, wantCode: 0,
			wantStdout: []string{"usage: gatehouse demo [-listen ADDR]\n", "  -listen address\n"}, notStdout: []string{"-c file"}},
		{name: "version -h has no flags", args: []string{"version", "-h"}, wantCode: 0,
			wantStdout: []string{"usage: gatehouse version\n"}, notStdout: []string{"flags:"}},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2,
			wantStderr: []string{`gatehouse: unknown command "serve"`, "gatehouse help"}},
		{name: "unknown flag", args: []string{"validate", "-listen", "x"}, wantCode: 2,
			wantStderr: []string{"gatehouse validate: flag provided but not defined: -listen", "usage: gatehouse validate [-c FILE]"}},
		{name: "stray argument", args: []string{"run", "gatehouse.yaml"}, wantCode: 2,
			wantStderr: []string{`gatehouse run: unexpected argument "gatehouse.yaml"`}},
		{name: "missing flag value", args: []string{"run", "-c"}, wantCode: 2,
			wantStderr: []string{"flag needs an argument: -c"}},
		{name: "version takes no arguments", args: []string{"version", "extra"}, wantCode: 2,
			wantStderr: []string{`gatehouse version: unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, &out, &errOut)
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, &out)
				}
			}
			for _, w := range tt.notStdout {
				if strings.Contains(out.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, &out)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, &errOut)
				}
			}
			if tt.wantCode == 0 && errOut.Len() > 0 {
				t.Errorf("stderr on success:\n%s", &errOut)
			}
			if tt.wantCode == 2 && out.Len() > 0 {
				t.Errorf("stdout on a usage error:\n%s", &out)
			}
		})
	}
}

// `gatehouse help NAME` and `gatehouse NAME --help` print the same.
func TestHelpCommandMatchesFlag(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		var a, b, e bytes.Buffer
		if code := run([]string{"help", c.name}, &a, &e); code != 0 {
			t.Fatalf("help %s: exit %d: %s", c.name, code, &e)
		}
		if code := run([]string{c.name, "--help"}, &b, &e); code != 0 {
			t.Fatalf("%s --help: exit %d: %s", c.name, code, &e)
		}
		if a.String() != b.String() {
			t.Errorf("help %s:\n%s\n%s --help:\n%s", c.name, &a, c.name, &b)
		}
		if !strings.HasPrefix(a.String(), "usage: gatehouse "+c.name) {
			t.Errorf("help %s starts %.40q", c.name, &a)
		}
	}
}

func TestFormatVersion(t *testing.T) {
	t.Parallel()
	vcs := []debug.BuildSetting{
		{Key: "-trimpath", Value: "true"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	tests := []struct {
		name    string
		ldflags string
		bi      *debug.BuildInfo
		ok      bool
		want    string
	}{
		{name: "go install of a tagged module",
			bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "gatehouse", Version: "v1.2.3"}}, ok: true,
			want: "v1.2.3 go1.26.0"},
		{name: "ldflags win over the module version",
			ldflags: "v9.9.9", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}}, ok: true,
			want: "v9.9.9 go1.26.0"},
		{name: "go build in a dirty checkout",
			bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20260102030405-0123456789ab+dirty"}, Settings: vcs}, ok: true,
			want: "v0.0.0-20260102030405-0123456789ab+dirty (rev 0123456789ab, 2026-01-02T03:04:05Z, modified) go1.26.0"},
		{name: "ldflags with vcs",
			ldflags: "v1.0.0-3-gabc", bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: vcs[:4]}, ok: true,
			want: "v1.0.0-3-gabc (rev 0123456789ab, 2026-01-02T03:04:05Z) go1.26.0"},
		{name: "go build without vcs",
			bi: &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, ok: true,
			want: "devel go1.26.0"},
		{name: "no build info", ok: false, want: "devel"},
		{name: "no build info, ldflags", ldflags: "v2.0.0", ok: false, want: "v2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := formatVersion(tt.ldflags, tt.bi, tt.ok); got != tt.want {
				t.Errorf("formatVersion = %q, want %q", got, tt.want)
			}
		})
	}
}
