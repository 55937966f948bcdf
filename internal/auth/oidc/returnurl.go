package oidc

import (
	"net/url"
	"strings"
)

// maxReturnLen bounds a return URL kept in a login-flow cookie.
const maxReturnLen = 2048

// SafeReturn checks a return URL (where to send the browser after login)
// and returns it in canonical form. Only a path on Gatehouse's own origin
// is accepted, with an optional query: never a scheme, a host, or anything
// a browser could read as one. Refused, among others: "//evil",
// "/\evil", "https:evil", "/%2F%2Fevil", "/%5Cevil", tabs and newlines
// (browsers strip them, so "/\t/evil" becomes "//evil"), and any other
// control character, raw or percent-encoded.
func SafeReturn(raw string) (string, bool) {
	if raw == "" || len(raw) > maxReturnLen || raw[0] != '/' {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x21 || c == 0x7f || c == '\\' || c >= 0x80 {
			return "", false // controls, space, backslash, raw non-ASCII
		}
	}
	// Decode the path up to three times: whatever the decoded forms look
	// like, none may start like an authority or hold a control or
	// backslash (some apps and proxies decode again before redirecting).
	// The query only has to be free of encoded controls.
	path, query, _ := strings.Cut(raw, "?")
	s := path
	for range 3 {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", false
		}
		if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") || hasControl(d, true) {
			return "", false
		}
		if d == s {
			break
		}
		s = d
	}
	if d, err := url.PathUnescape(query); err != nil || hasControl(d, false) {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.EscapedPath(), "/") {
		return "", false
	}
	u.Fragment, u.RawFragment = "", ""
	out := u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	// Escaping can make the canonical form longer than the input ("*"
	// becomes "%2A"); the bound holds for what is kept, so an accepted
	// value is accepted again unchanged.
	if strings.HasPrefix(out, "//") || len(out) > maxReturnLen {
		return "", false
	}
	return out, true
}

// hasControl reports control characters in s, and backslashes when
// backslash is set.
func hasControl(s string, backslash bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || (backslash && c == '\\') {
			return true
		}
	}
	return false
}
