package httpsyntax

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// userinfo compares a URL's user information by what it prints: its
// fields are unexported.
var userinfo = cmp.Comparer(func(a, b *url.Userinfo) bool { return a.String() == b.String() })

// checkTarget fails t if ParseTarget and url.ParseRequestURI disagree on
// target: one refuses what the other takes, or the URLs differ in any
// field.
func checkTarget(t *testing.T, target string) {
	t.Helper()
	var got url.URL
	ok := ParseTarget(target, &got)
	want, err := url.ParseRequestURI(target)
	if ok != (err == nil) {
		t.Fatalf("%q: ParseTarget took it: %v; url.ParseRequestURI: %v", target, ok, err)
	}
	if ok {
		if d := cmp.Diff(*want, got, userinfo); d != "" {
			t.Fatalf("%q: URL differs from url.ParseRequestURI's (-want +got):\n%s", target, d)
		}
	}
}

func TestParseTargetMatchesNetURL(t *testing.T) {
	t.Parallel()
	for _, target := range []string{
		"/", "/x", "/kline/api/candles?symbol=BTC", "/a?", "/a??", "/a?b?", "/?", "/??",
		"//x", "///x", "/a;b=c,d:e@f$g&h+i~j_k.l-m", "/a/../b/./c", "/a#f", "/a?b#f",
		"/a%2Fb", "/%7e", "/%zz", "/a%", "/a|b", "/a{b}", "/a\"b", "/a<b>", "/a^b", "/a`b",
		"/a[b]", "/a!b", "/a'b", "/a(b)", "/a*b", "/a\\b", "/x?%zz", "/x?a=1&b=%20;c",
		"", "*", "x", "http://h/p", "/a b", "/a?b c", "/a?b\tc", "/a?\x7f", "/\xff?\xfe", "/a?b\x00",
	} {
		checkTarget(t, target)
	}
	// Every byte, alone in a path and in a query: HTTP/1.1's targets
	// hold 0x21-0x7e, HTTP/2's :path any field value (a space, a tab,
	// obs-text), and net/url refuses control bytes.
	for c := range 256 {
		checkTarget(t, "/a"+string(byte(c))+"b")
		checkTarget(t, "/a?"+string(byte(c)))
	}
}

// FuzzParseTargetMatchesNetURL: ParseTarget makes what
// url.ParseRequestURI makes of any target, HTTP/1.1's (bytes 0x21-0x7e)
// or HTTP/2's :path (any field value).
func FuzzParseTargetMatchesNetURL(f *testing.F) {
	for _, s := range []string{"/x", "/a?", "/a??b", "//x?y", "/%7e;p?x#f", "/a|b?c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkTarget(t, s)
	})
}

func TestTargetBytes(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"/a/b?c=d&e=%20f": true, "": true, "/\xff\xfe": true, "/a{|}\"<>": true,
		"/a b": false, "/a?b c": false, "/a\tb": false, "/a\x00": false, "/a\x7f": false, "/a\r\n": false,
	} {
		if got := TargetBytes(s); got != want {
			t.Errorf("TargetBytes(%q) = %v, want %v", s, got, want)
		}
	}
}
