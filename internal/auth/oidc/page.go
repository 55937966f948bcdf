package oidc

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"unicode"
)

// PageCSP is the Content-Security-Policy of the small pages Gatehouse
// writes itself (the logout page, error pages): they load nothing and
// run no script. form-action is left out on purpose: CSP checks it on
// the redirects that follow a form post too, and the logout form's post
// is answered with a redirect to the issuer's end_session_endpoint, an
// origin of its own (CSP Level 3 §6.4.1; Chromium enforces it).
const PageCSP = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"

// LogoutForm is the logout button: a form that POSTs to logoutPath. The
// POST passes logout's same-origin check because the browser sends
// Sec-Fetch-Site: same-origin (and Origin) for a form on a page of this
// origin; it needs no token of its own.
func LogoutForm(logoutPath string) string {
	return `<form method="post" action="` + html.EscapeString(logoutPath) + `"><button type="submit" name="logout">Log out</button></form>`
}

// SetPageHeaders sets what every page of Gatehouse's own carries: HTML,
// never cached (it names the user), never framed (a framed logout button
// could be clicked by a trick), and the CSP above.
func SetPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", PageCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: a form post would then send Origin: null
}

// User is who a session belongs to, for pages: the ID token's
// preferred_username or name when it had one, else the subject. Not
// escaped; callers escape.
func (r *Record) User() string {
	if r.Name != "" {
		return r.Name
	}
	return r.Subject
}

// displayName picks a person's name from ID token claims (OpenID Connect
// Core §5.1), cleaned of control characters and cut to 100 characters; ""
// when the token has none.
func displayName(claims map[string]any) string {
	for _, c := range []string{"preferred_username", "name", "email"} {
		if v, _ := claims[c].(string); strings.TrimSpace(v) != "" {
			v = strings.Map(func(r rune) rune {
				if unicode.IsControl(r) {
					return -1
				}
				return r
			}, strings.TrimSpace(v))
			if rs := []rune(v); len(rs) > 100 {
				v = string(rs[:100]) + "…"
			}
			return v
		}
	}
	return ""
}

// logoutPage answers a GET of logout_path: a page with the logout button
// (and who is logged in). A GET never logs out: a link, an image or a
// prefetch of another site could send one; the button's POST does, past
// the same-origin check.
func (l *Login) logoutPage(w http.ResponseWriter, r *http.Request) {
	var rec *Record
	if id, err := l.cookieID(r); err == nil {
		if got, err := l.load(r.Context(), storeKey(id)); err == nil && l.cfg.Now().Before(got.Until) {
			rec = got
		}
	}
	SetPageHeaders(w.Header())
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	var b strings.Builder
	b.WriteString("<!doctype html><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>Log out</title><h1>Log out</h1>\n")
	if rec != nil {
		fmt.Fprintf(&b, "<p>You are logged in as <strong>%s</strong>.</p>\n", html.EscapeString(rec.User()))
	} else {
		b.WriteString("<p>You are not logged in here.</p>\n")
	}
	b.WriteString(LogoutForm(l.cfg.LogoutPath) + "\n")
	_, _ = io.WriteString(w, b.String())
}
