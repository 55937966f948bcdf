package route

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
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
		{name: "encoded delete", in: "/a%7fb", err: ErrControl},
		{name: "raw delete", in: "/a\x7fb", err: ErrControl},
		{name: "raw tab", in: "/a\tb", err: ErrControl},
		{name: "encoded unit separator", in: "/a%1Fb", err: ErrControl},
		{name: "utf8 raw escaped", in: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{name: "utf8 raw and encoded mixed", in: "/caf\xc3%a9", want: "/caf%C3%A9"},
		{name: "truncated utf8", in: "/caf%C3", err: ErrInvalidUTF8},
		{name: "truncated utf8 before slash", in: "/caf%C3/%A9", err: ErrInvalidUTF8},
		{name: "latin1", in: "/caf%E9", err: ErrInvalidUTF8},
		{name: "raw invalid utf8", in: "/caf\xe9", err: ErrInvalidUTF8},
		{name: "ascii inside a sequence", in: "/\xca0\x86", err: ErrInvalidUTF8},
		{name: "overlong slash", in: "/a%C0%AFb", err: ErrInvalidUTF8},
		{name: "encoded surrogate", in: "/%ED%A0%80", err: ErrInvalidUTF8},
		{name: "params kept", in: "/admin;x/secret", want: "/admin;x/secret"},
		{name: "encoded params canonical", in: "/admin%3bx/secret", want: "/admin%3Bx/secret"},
		{name: "dot-dot params", in: "/static/..;/admin/x", err: ErrDotParams},
		{name: "dot params", in: "/static/.;x/admin", err: ErrDotParams},
		{name: "encoded dot-dot params", in: "/static/%2e%2e;x/admin", err: ErrDotParams},
		{name: "dot-dot encoded params", in: "/static/..%3b/admin", err: ErrDotParams},
		{name: "empty name params kept", in: "/app/;jsessionid=1", want: "/app/;jsessionid=1"},
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

func TestStripParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		params         bool
	}{
		{name: "none", in: "/admin/x", want: "/admin/x"},
		{name: "segment", in: "/admin;x/secret", want: "/admin/secret", params: true},
		{name: "last", in: "/app/page.jsp;jsessionid=AB", want: "/app/page.jsp", params: true},
		{name: "encoded", in: "/admin%3Bx/secret", want: "/admin/secret", params: true},
		{name: "several", in: "/a;x=1;y=2/b;z", want: "/a/b", params: true},
		{name: "empty name collapses", in: "/a/;x/b", want: "/a/b", params: true},
		{name: "empty name at end", in: "/app/;jsessionid=1", want: "/app/", params: true},
		{name: "root", in: "/;x", want: "/", params: true},
		{name: "other escapes kept", in: "/a%20b;x", want: "/a%20b", params: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := HasParams(tt.in); got != tt.params {
				t.Errorf("HasParams(%q) = %v, want %v", tt.in, got, tt.params)
			}
			got, err := StripParams(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("StripParams(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
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
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/", "//x//y/", "/a%2fb", "/a/./b/", "/caf%C3%A9", `/a\b`, "/%41",
		"/static/..;/admin/x", "/admin;x/secret", "/a%3b/..%3Bx/b", "/a/;x/../b", "/caf%C3", "/%E9", "/a\x7f", "/a%7F",
		"/\xc3\xa9", "/%C0%AF"} {
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
			if name, _ := cutParams(seg); name != seg && (name == "." || name == "..") {
				t.Fatalf("%q -> %q: dot segment with parameters survived", in, out)
			}
		}
		dec, err := url.PathUnescape(out)
		if err != nil || !utf8.ValidString(dec) {
			t.Fatalf("%q -> %q: decodes to %q, %v: not UTF-8", in, out, dec, err)
		}
		for _, c := range []byte(dec) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("%q -> %q: control byte %#x once decoded", in, out, c)
			}
		}
		stripped, err := StripParams(out)
		if err != nil || HasParams(stripped) || !strings.HasPrefix(stripped, "/") {
			t.Fatalf("%q -> %q: without parameters %q, %v", in, out, stripped, err)
		}
		if again, err := NormalizePath(stripped); err != nil || again != stripped {
			t.Fatalf("%q -> %q: without parameters %q is not normal (%q, %v)", in, out, stripped, again, err)
		}
		if strings.Contains(out, "//") || strings.ContainsAny(out, "\\\x00") ||
			strings.Contains(strings.ToUpper(out), "%2F") || strings.Contains(strings.ToUpper(out), "%2E") {
			t.Fatalf("%q -> %q: unsafe output", in, out)
		}
	})
}
