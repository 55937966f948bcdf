package oidc

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestSafeReturn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"path", "/admin/", "/admin/", true},
		{"path and query", "/admin/users?page=2&q=a%20b", "/admin/users?page=2&q=a%20b", true},
		{"fragment dropped", "/admin/#top", "/admin/", true},
		{"root", "/", "/", true},
		{"empty", "", "", false},
		{"relative", "admin", "", false},
		{"scheme-relative", "//evil.example", "", false},
		{"backslash authority", "/\\evil.example", "", false},
		{"backslash later", "/a\\b", "", false},
		{"absolute", "https://evil.example/", "", false},
		{"scheme without slashes", "https:evil.example", "", false},
		{"javascript", "javascript:alert(1)", "", false},
		{"encoded slashes", "/%2F%2Fevil.example", "", false},
		{"encoded slash after slash", "/%2fevil.example", "", false},
		{"encoded backslash", "/%5Cevil.example", "", false},
		{"double encoded slashes", "/%252F%252Fevil.example", "", false},
		{"tab makes //", "/\t/evil.example", "", false},
		{"newline", "/admin\n", "", false},
		{"encoded newline", "/admin%0d%0aSet-Cookie:x", "", false},
		{"encoded nul", "/admin%00", "", false},
		{"space", "/a b", "", false},
		{"raw unicode", "/ädmin", "", false},
		{"bad escape", "/%zz", "", false},
		{"too long", "/" + strings.Repeat("a", maxReturnLen), "", false},
		// Found by FuzzSafeReturn: a quote makes the whole path escaped
		// again, so "*" becomes "%2A" and the result outgrows the bound.
		{"too long escaped", "/\"" + strings.Repeat("*", 1000), "", false},
		{"userinfo-looking path", "/@evil.example", "/@evil.example", true},
		{"encoded backslash in the query", "/admin/s?q=a%5Cb", "/admin/s?q=a%5Cb", true},
		{"encoded newline in the query", "/admin/s?q=a%0Ab", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := SafeReturn(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("SafeReturn(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzSafeReturn: whatever SafeReturn accepts, a browser resolves on our
// own origin, and checking the result again gives the same result.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/admin/?a=b", "//evil", "/\\evil", "https:evil", "/%2f%2fevil", "/%09/evil", "/a/../b"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://gw.example/start")
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := SafeReturn(in)
		if !ok {
			return
		}
		u, err := url.Parse(out)
		if err != nil {
			t.Fatalf("accepted %q -> %q does not parse: %v", in, out, err)
		}
		if r := base.ResolveReference(u); r.Host != "gw.example" || r.Scheme != "https" {
			t.Fatalf("accepted %q -> %q resolves to %s", in, out, r)
		}
		if again, ok := SafeReturn(out); !ok || again != out {
			t.Fatalf("not stable: %q -> %q -> %q, %v", in, out, again, ok)
		}
		if strings.ContainsAny(out, "\\\t\r\n") {
			t.Fatalf("accepted %q -> %q with a control or backslash", in, out)
		}
	})
}

func TestParseCallback(t *testing.T) {
	t.Parallel()
	state := strings.Repeat("s", 43)
	for _, tc := range []struct {
		name, q string
		want    callbackParams
		err     bool
	}{
		{"code", "code=abc&state=" + state, callbackParams{state: state, code: "abc"}, false},
		{"iss", "code=abc&state=" + state + "&iss=https%3A%2F%2Fidp", callbackParams{state: state, code: "abc", iss: "https://idp", hasIss: true}, false},
		{"error", "error=access_denied&state=" + state, callbackParams{state: state, errCode: "access_denied"}, false},
		{"odd error code", "error=%3Cscript%3E&state=" + state, callbackParams{state: state, errCode: "invalid_error_code"}, false},
		{"unknown params ignored", "x=1&code=c&state=" + state + "&session_state=z", callbackParams{state: state, code: "c"}, false},
		{"repeated state", "code=c&state=a&state=b", callbackParams{}, true},
		{"repeated code", "code=c&code=d&state=" + state, callbackParams{}, true},
		{"no state", "code=c", callbackParams{}, true},
		{"bad escape", "code=%zz&state=" + state, callbackParams{}, true},
		{"empty", "", callbackParams{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCallback(tc.q)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseCallback(f *testing.F) {
	f.Add("code=abc&state=xyz&iss=https%3A%2F%2Fidp")
	f.Add("error=access_denied&state=s")
	f.Add("state=a&state=b")
	f.Fuzz(func(t *testing.T, q string) {
		p, err := parseCallback(q)
		if err != nil {
			return
		}
		if p.state == "" {
			t.Fatal("accepted a response without state")
		}
		if strings.Trim(p.errCode, "abcdefghijklmnopqrstuvwxyz_") != "" {
			t.Fatalf("error code %q passes through", p.errCode)
		}
	})
}

func testKeys(t testing.TB) *keys {
	k, err := deriveKeys(strings.Repeat("k", 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	id := randomID(32)
	v := k.sessionCookie(id)
	if len(v) > 100 {
		t.Fatalf("cookie value is %d bytes", len(v))
	}
	if got, err := k.sessionID(v); err != nil || got != id {
		t.Fatalf("sessionID = %q, %v", got, err)
	}
	other, _ := deriveKeys(strings.Repeat("x", 32))
	for name, bad := range map[string]string{
		"other secret": other.sessionCookie(id),
		"tampered id":  randomID(32) + v[43:],
		"no mac":       id,
		"empty":        "",
		"mac only":     "." + v[44:],
	} {
		if _, err := k.sessionID(bad); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
}

// FuzzSessionCookie: no value but one Gatehouse made decodes.
func FuzzSessionCookie(f *testing.F) {
	k := testKeys(f)
	f.Add(k.sessionCookie(randomID(32)))
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		id, err := k.sessionID(v)
		if err != nil {
			return
		}
		if k.sessionCookie(id) != v {
			t.Fatalf("accepted %q, which Gatehouse would not have made", v)
		}
	})
}

func TestFlowCookieBinding(t *testing.T) {
	t.Parallel()
	k := testKeys(t)
	sealed := seal(k.flow, []byte(`{"v":"x"}`), "name-a")
	if _, err := open(k.flow, sealed, "name-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := open(k.flow, sealed, "name-b"); err == nil {
		t.Fatal("a flow cookie opened under another name")
	}
	if _, err := open(k.store, sealed, "name-a"); err == nil {
		t.Fatal("a flow cookie opened with the store key")
	}
}

func TestIsNavigation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		method string
		h      map[string]string
		want   bool
	}{
		{"fetch metadata navigate", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}, true},
		{"fetch metadata cors", "GET", map[string]string{"Sec-Fetch-Mode": "cors", "Accept": "text/html"}, false},
		{"fetch metadata no-cors", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors"}, false},
		{"old browser html", "GET", map[string]string{"Accept": "text/html,application/xhtml+xml"}, true},
		{"api json", "GET", map[string]string{"Accept": "application/json"}, false},
		{"xhr", "GET", map[string]string{"Accept": "text/html", "X-Requested-With": "XMLHttpRequest"}, false},
		{"post navigation", "POST", map[string]string{"Sec-Fetch-Mode": "navigate"}, false},
		{"curl", "GET", map[string]string{"Accept": "*/*"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, "/admin/", nil)
			for k, v := range tc.h {
				r.Header.Set(k, v)
			}
			if got := IsNavigation(r); got != tc.want {
				t.Fatalf("IsNavigation = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsOwnCookie(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"gatehouse_session": true, "__Host-gatehouse_session": true, "gatehouse_session_flow_abc": true,
		"__Host-gatehouse_session_flow_abc": true, "gatehouse_sessionx": false, "other": false, "gatehouse": false,
	} {
		if got := IsOwnCookie("gatehouse_session", name); got != want {
			t.Errorf("IsOwnCookie(%q) = %v", name, got)
		}
	}
}
