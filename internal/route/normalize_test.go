package route

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		err            error
	}{
		{name: "root", in: "/", want: "/"},
		{name: "clean", in: "/admin/users", want: "/admin/users"},
		{name: "trailing slash kept", in: "/admin/", want: "/admin/"},
		{name: "duplicate slashes", in: "//admin///users", want: "/admin/users"},
		{name: "dot segment", in: "/admin/./users", want: "/admin/users"},
		{name: "dot-dot", in: "/admin/../oauth/login", want: "/oauth/login"},
		{name: "dot-dot at end keeps dir", in: "/a/b/..", want: "/a/"},
		{name: "encoded dot-dot", in: "/admin/%2e%2E/oauth", want: "/oauth"},
		{name: "encoded unreserved decoded", in: "/%61dmin/%7Euser", want: "/admin/~user"},
		{name: "reserved escape uppercased", in: "/a%3fb", want: "/a%3Fb"},
		{name: "space stays escaped", in: "/a%20b", want: "/a%20b"},
		{name: "utf8 stays escaped", in: "/caf%c3%a9", want: "/caf%C3%A9"},
		{name: "sub-delims kept", in: "/a;b=c,d@e:f", want: "/a;b=c,d@e:f"},
		{name: "only dots", in: "/./.", want: "/"},
		{name: "above root", in: "/../etc/passwd", err: ErrAboveRoot},
		{name: "above root deep", in: "/a/../../b", err: ErrAboveRoot},
		{name: "encoded above root", in: "/%2e%2e/x", err: ErrAboveRoot},
		{name: "encoded slash", in: "/a%2Fb", err: ErrEncodedSeparator},
		{name: "encoded slash lower", in: "/a%2fb", err: ErrEncodedSeparator},
		{name: "encoded backslash", in: "/a%5cb", err: ErrEncodedSeparator},
		{name: "backslash", in: `/a\b`, err: ErrBackslash},
		{name: "nul", in: "/a%00b", err: ErrControl},
		{name: "encoded newline", in: "/a%0d%0ab", err: ErrControl},
		{name: "truncated escape", in: "/a%2", err: ErrBadEscape},
		{name: "bad hex", in: "/a%zz", err: ErrBadEscape},
		{name: "not origin form", in: "admin", err: ErrNotOrigin},
		{name: "empty", in: "", err: ErrNotOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizePath(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("NormalizePath(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("NormalizePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizePathCleanCaseDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _, _ = NormalizePath("/admin/users/42") })
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

// FuzzNormalizePath checks the normalizer's promises on any input: the
// result is a fixed point, starts with /, and holds nothing a later stage
// could decode into a different path.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/", "//x//y/", "/a%2fb", "/a/./b/", "/caf%C3%A9", `/a\b`, "/%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("%q -> %q: not rooted", in, out)
		}
		again, err := NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("%q -> %q -> %q, %v: not a fixed point", in, out, again, err)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q: dot segment survived", in, out)
			}
		}
		if strings.Contains(out, "//") || strings.ContainsAny(out, "\\\x00") ||
			strings.Contains(strings.ToUpper(out), "%2F") || strings.Contains(strings.ToUpper(out), "%2E") {
			t.Fatalf("%q -> %q: unsafe output", in, out)
		}
	})
}
