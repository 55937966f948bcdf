package route

import (
	"errors"
	"strings"
	"unicode/utf8"

	"gatehouse/internal/httpsyntax"
)

// Path normalization policy (docs/config.md, "Paths"). Gatehouse decides
// once, before routing, what path the request is for; routing, filters and
// the upstream all see that one path, so no filter can be shown one path
// while the upstream serves another.
//
//   - Percent-encoded unreserved characters (RFC 3986 §2.3: letters, digits,
//     -._~) are decoded; other escapes are kept, with uppercase hex
//     (§6.2.2.1). "%2e%2E" is therefore a dot segment like "..".
//   - Dot segments are removed (§5.2.4); a ".." that would climb above the
//     root is refused, not clamped: it is an attack or a broken client.
//   - Runs of slashes collapse to one; a trailing slash is kept.
//   - Encoded separators (%2F, %5C), a raw backslash, encoded or raw control
//     characters (0x00-0x1f, 0x7f; %00 included), malformed escapes and
//     bytes that do not decode to UTF-8 cannot be made safe without
//     guessing what the upstream does with them, so they are refused with
//     400.
//   - Path parameters (";" or "%3B" in a segment) are kept here; whether a
//     request may carry them is the engine's decision (HasParams,
//     StripParams). A dot segment with parameters ("..;x", ".%3Bx") is
//     refused: Gatehouse would keep it as a name, while Java servlet
//     containers (Tomcat, Jetty, Spring) remove the parameter first and
//     resolve the "..": "/static/..;/admin" is "/admin" to them.

// Errors returned by NormalizePath. All mean 400 Bad Request.
var (
	ErrNotOrigin        = errors.New("path must start with /")
	ErrBadEscape        = errors.New("malformed percent-encoding in path")
	ErrEncodedSeparator = errors.New("encoded / or \\ in path")
	ErrBackslash        = errors.New("backslash in path")
	ErrControl          = errors.New("control character in path")
	ErrAboveRoot        = errors.New("path climbs above the root")
	ErrInvalidUTF8      = errors.New("path is not UTF-8 once decoded")
	ErrDotParams        = errors.New("dot segment with path parameters")
)

const upperhex = "0123456789ABCDEF"

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pchar reports whether c may appear unescaped in a path segment
// (RFC 3986 §3.3: unreserved, sub-delims, ':' and '@').
func pchar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

// isClean reports whether p is already in normal form, so the common case
// costs one scan and no allocation.
func isClean(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				return false
			}
			continue
		}
		if !pchar(c) {
			return false
		}
	}
	return true
}

// NormalizePath returns the normal form of an escaped request path (as
// from url.URL.EscapedPath), or an error if it cannot be made safe.
func NormalizePath(p string) (string, error) {
	if isClean(p) {
		return p, nil
	}
	if len(p) == 0 || p[0] != '/' {
		return "", ErrNotOrigin
	}
	// Decode unreserved escapes and canonicalize the rest, one segment at a
	// time, then resolve dot segments on the result.
	segs := make([]string, 0, 8)
	var b strings.Builder
	var dec []byte // the segment decoded, for the UTF-8 check
	trailing := false
	for _, raw := range strings.Split(p[1:], "/") {
		b.Reset()
		dec = dec[:0]
		high := false // the segment has a byte 0x80 or over
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			if c != '%' {
				dec = append(dec, c)
				high = high || c >= 0x80
			}
			switch {
			case c == '%':
				if i+2 >= len(raw) {
					return "", ErrBadEscape
				}
				hi, ok1 := httpsyntax.HexVal(raw[i+1])
				lo, ok2 := httpsyntax.HexVal(raw[i+2])
				if !ok1 || !ok2 {
					return "", ErrBadEscape
				}
				d := hi<<4 | lo
				i += 2
				dec = append(dec, d)
				high = high || d >= 0x80
				switch {
				case d == '/' || d == '\\':
					return "", ErrEncodedSeparator
				case d < 0x20 || d == 0x7f:
					return "", ErrControl
				case unreserved(d):
					b.WriteByte(d)
				default:
					b.WriteByte('%')
					b.WriteByte(upperhex[d>>4])
					b.WriteByte(upperhex[d&15])
				}
			case c == '\\':
				return "", ErrBackslash
			case c < 0x20 || c == 0x7f:
				return "", ErrControl
			case pchar(c):
				b.WriteByte(c)
			default:
				b.WriteByte('%')
				b.WriteByte(upperhex[c>>4])
				b.WriteByte(upperhex[c&15])
			}
		}
		// Decoded, a segment must be UTF-8: "/" cannot fall inside a
		// sequence, so segment by segment is enough.
		if high && !utf8.Valid(dec) {
			return "", ErrInvalidUTF8
		}
		seg := b.String()
		if name, _ := cutParams(seg); name != seg && (name == "." || name == "..") {
			return "", ErrDotParams
		}
		switch seg {
		case "":
			trailing = true // "a//b" collapses; a final "" is a trailing slash
			continue
		case ".":
			trailing = true
			continue
		case "..":
			if len(segs) == 0 {
				return "", ErrAboveRoot
			}
			segs = segs[:len(segs)-1]
			trailing = true
			continue
		}
		segs = append(segs, seg)
		trailing = false
	}
	if len(segs) == 0 {
		return "/", nil
	}
	out := "/" + strings.Join(segs, "/")
	if trailing {
		out += "/"
	}
	return out, nil
}

// cutParams splits a normalized segment at its first path parameter
// delimiter, ";" or "%3B" (an escaped one counts: a hop that decodes
// before a servlet container makes it a ";").
func cutParams(seg string) (name, params string) {
	for i := 0; i < len(seg); i++ {
		switch {
		case seg[i] == ';':
			return seg[:i], seg[i:]
		case seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '3' && seg[i+2] == 'B':
			return seg[:i], seg[i:]
		}
	}
	return seg, ""
}

// HasParams reports whether p, a normalized path, has path parameters:
// ";" or "%3B" in a segment (RFC 3986 §3.3 leaves their meaning to the
// server; servlet containers remove them before routing).
func HasParams(p string) bool {
	return strings.IndexByte(p, ';') >= 0 || strings.Contains(p, "%3B")
}

// StripParams returns p, a normalized path, without its path parameters,
// normalized again: the path a servlet container dispatches on
// ("/app;jsessionid=1/x" is "/app/x", "/a/;x/b" is "/a/b").
func StripParams(p string) (string, error) {
	if !HasParams(p) {
		return p, nil
	}
	var b strings.Builder
	b.Grow(len(p))
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		name, _ := cutParams(seg)
		b.WriteString(name)
	}
	return NormalizePath(b.String())
}
