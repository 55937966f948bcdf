package main

import (
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3" (the
// Makefile does); when empty, the module version from the build info is
// used (go install gatehouse/cmd/gatehouse@v1.2.3).
var version string

// versionString is what `gatehouse version` prints (after "gatehouse "),
// and the version reported in metrics and on the status page.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	return formatVersion(version, bi, ok)
}

// formatVersion is "VERSION (DETAILS) GOVERSION": VERSION is the ldflags
// value when set, else the main module's version (go install of a tagged
// module, or the pseudo-version go build stamps from VCS), else "devel";
// DETAILS are the VCS revision (12 digits), its commit time and
// "modified" for a dirty tree, when the build recorded them.
func formatVersion(ldflags string, bi *debug.BuildInfo, ok bool) string {
	v := ldflags
	if v == "" && ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "devel"
	}
	if !ok {
		return v
	}
	var rev, at string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var details []string
	if rev != "" {
		details = append(details, "rev "+rev)
	}
	if at != "" {
		details = append(details, at)
	}
	if modified {
		details = append(details, "modified")
	}
	if len(details) > 0 {
		v += " (" + strings.Join(details, ", ") + ")"
	}
	if bi.GoVersion != "" {
		v += " " + bi.GoVersion
	}
	return v
}
