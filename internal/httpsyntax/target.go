package httpsyntax

import (
	"net/url"
	"strings"
)

// ParseTarget sets *u to what url.ParseRequestURI makes of target, a
// request target (HTTP/1.1's request line, HTTP/2's :path), and reports
// false when that refuses it. The common target, whose path has nothing
// to unescape and nothing net/url would escape again and whose query has
// no control byte, is read here in place, without url.ParseRequestURI's
// allocation: its Path is the path as it is, RawPath empty, RawQuery what
// follows the first "?", and ForceQuery set for a lone "?" at the end,
// as net/url's parse does. Anything else goes through
// url.ParseRequestURI. FuzzParseTargetMatchesNetURL holds it to that.
func ParseTarget(target string, u *url.URL) bool {
	path, query, hasQuery := strings.Cut(target, "?")
	fast := len(path) > 0 && path[0] == '/'
	for i := 0; fast && i < len(path); i++ {
		fast = pathTable[path[i]]
	}
	for i := 0; fast && i < len(query); i++ {
		fast = query[i] >= ' ' && query[i] != 0x7f // net/url refuses a control byte anywhere
	}
	if !fast {
		pu, err := url.ParseRequestURI(target)
		if err != nil {
			return false
		}
		*u = *pu
		return true
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

// pathTable holds the bytes net/url leaves as they are in a path, both
// ways (unescape and escape with its encodePath mode): no "%" to decode,
// nothing to encode, so the path is its own Path and needs no RawPath.
var pathTable = func() (t [256]bool) {
	for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// TargetBytes reports whether s, a request target or a part of one (a
// query), holds no space and no control byte: nothing that would end an
// HTTP/1.1 request line early or has no place in it.
func TargetBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
