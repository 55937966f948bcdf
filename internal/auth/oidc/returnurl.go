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
	// Decode up to three times: whatever the decoded forms look like, none
	// may start like an authority or hold a control or backslash (some
	// apps and proxies decode again before redirecting).
	s := raw
	for range 3 {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", false
		}
		if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") {
			return "", false
		}
		for i := 0; i < len(d); i++ {
			if c := d[i]; c < 0x20 || c == 0x7f || c == '\\' {
				return "", false
			}
		}
		if d == s {
			break
		}
		s = d
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
	if strings.HasPrefix(out, "//") {
		return "", false
	}
	return out, true
}
