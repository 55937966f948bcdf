package route

import (
	"errors"
	"strings"
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
//     characters (including %00) and malformed escapes cannot be made safe
//     without guessing what the upstream does with them, so they are
//     refused with 400.

// Errors returned by NormalizePath. All mean 400 Bad Request.
var (
	ErrNotOrigin        = errors.New("path must start with /")
	ErrBadEscape        = errors.New("malformed percent-encoding in path")
	ErrEncodedSeparator = errors.New("encoded / or \\ in path")
	ErrBackslash        = errors.New("backslash in path")
	ErrControl          = errors.New("control character in path")
	ErrAboveRoot        = errors.New("path climbs above the root")
)

const upperhex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

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
	trailing := false
	for _, raw := range strings.Split(p[1:], "/") {
		b.Reset()
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c == '%':
				if i+2 >= len(raw) {
					return "", ErrBadEscape
				}
				hi, ok1 := unhex(raw[i+1])
				lo, ok2 := unhex(raw[i+2])
				if !ok1 || !ok2 {
					return "", ErrBadEscape
				}
				d := hi<<4 | lo
				i += 2
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
		seg := b.String()
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
