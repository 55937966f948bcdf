package oidc

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// The demo printed a logout URL that answered 403 in a browser: a GET of
// the logout path now shows a page with a logout button, and never logs
// out by itself; the button's POST passes the same-origin check.
func TestLogoutPage(t *testing.T) {
	h := newHarness(t, 1)
	logout := h.gws[0].URL + "/_gatehouse/logout"
	formRE := regexp.MustCompile(`<form method="post" action="([^"]*)"><button type="submit" name="logout">Log out</button></form>`)

	anon := h.browser()
	r, body := anon.Do(t, "GET", logout)
	if r.StatusCode != http.StatusOK || !strings.Contains(body, "not logged in") || !formRE.MatchString(body) {
		t.Fatalf("logged out: %d\n%s", r.StatusCode, body)
	}
	for name, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": PageCSP,
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "style=") || strings.Contains(body, "<style") {
		t.Errorf("the page uses what its CSP forbids:\n%s", body)
	}

	b := h.browser()
	b.login(t, "alice")
	// What a browser sends for a URL typed or pasted into the address bar,
	// a link on this site and a link on another site: all get the page.
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"},
		{"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate"},
		{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"},
		{"Referer", "https://evil.example/"},
		nil,
	} {
		r, body := b.Do(t, "GET", logout, hdr...)
		m := formRE.FindStringSubmatch(body)
		if r.StatusCode != http.StatusOK || m == nil || m[1] != "/_gatehouse/logout" || !strings.Contains(body, "logged in as <strong>alice</strong>") {
			t.Fatalf("GET %v: %d\n%s", hdr, r.StatusCode, body)
		}
		if len(r.Header.Values("Set-Cookie")) != 0 {
			t.Fatalf("GET %v set cookies: %q", hdr, r.Header.Values("Set-Cookie"))
		}
	}
	if r, body := b.Do(t, "HEAD", logout); r.StatusCode != http.StatusOK || body != "" {
		t.Fatalf("HEAD: %d %q", r.StatusCode, body)
	}
	if r, _ := b.Do(t, "PUT", logout); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD, POST" {
		t.Fatalf("PUT: %d Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	if code, _ := b.app(t, 0); code != http.StatusOK {
		t.Fatalf("the session after GETs of the logout path: %d, want 200", code)
	}
	// Pressing the button: the browser posts the form from this origin.
	r, _ = b.Do(t, "POST", h.gws[0].URL+"/_gatehouse/logout", "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate", "Origin", h.gws[0].URL)
	if r.StatusCode != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "/end_session?") {
		t.Fatalf("the button's POST: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if code, _ := b.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("after the button: %d, want 401", code)
	}
}

// The page escapes the name it shows: it comes from the issuer's claims.
func TestLogoutPageEscapesName(t *testing.T) {
	h := newHarness(t, 1)
	l := h.logins[0]
	id := randomID(32)
	now := h.clock.Now()
	rec := &Record{Subject: "s-1", Name: `<img src=x onerror=alert(1)>&"`, Created: now, Until: now.Add(time.Hour)}
	if err := l.save(context.Background(), storeKey(id), rec); err != nil {
		t.Fatal(err)
	}
	b := &browser{Jar: &testutil.Jar{Cookies: map[string]string{"gatehouse_session": l.keys.sessionCookie(id)}}, h: h}
	r, body := b.Do(t, "GET", h.gws[0].URL+"/_gatehouse/logout")
	if r.StatusCode != http.StatusOK || !strings.Contains(body, "<strong>&lt;img src=x onerror=alert(1)&gt;&amp;&#34;</strong>") || strings.Contains(body, "<img") {
		t.Fatalf("%d\n%s", r.StatusCode, body)
	}
}

func TestDisplayName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		claims map[string]any
		want   string
	}{
		{name: "preferred_username first", claims: map[string]any{"preferred_username": "alice", "name": "Alice A.", "email": "a@x"}, want: "alice"},
		{name: "then name", claims: map[string]any{"name": " Alice A. ", "email": "a@x"}, want: "Alice A."},
		{name: "then email", claims: map[string]any{"email": "a@x", "name": "  "}, want: "a@x"},
		{name: "none", claims: map[string]any{"sub": "1234"}, want: ""},
		{name: "not a string", claims: map[string]any{"name": 7}, want: ""},
		{name: "control characters dropped", claims: map[string]any{"name": "ali\x00ce\r\n"}, want: "alice"},
		{name: "long names cut", claims: map[string]any{"name": strings.Repeat("é", 150)}, want: strings.Repeat("é", 100) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := displayName(tt.claims); got != tt.want {
				t.Errorf("displayName = %q, want %q", got, tt.want)
			}
		})
	}
}
