// Package httpsyntax holds the byte-level checks of HTTP/1.1 syntax that
// more than one of Gatehouse's parsers and writers make on the request
// path (internal/h1guard, internal/h1server, internal/h2server,
// internal/lb, internal/route), each exactly the rule net/http (or
// net/url) applies, and fast on long input or without its allocation.
//
// Why: a request's header values are its largest part (a bearer token
// of 600 bytes, a browser's kilobyte of cookies), and each is checked
// byte by byte twice on its way through (when the request is read, and
// again before it is written upstream). ValidFieldValue looks at eight
// bytes at a time (BenchmarkValidFieldValue).
package httpsyntax

import (
	"encoding/binary"
	"unsafe"
)

// ValidFieldValue reports whether v may be an HTTP field value as
// net/http's httpguts.ValidHeaderFieldValue decides it: no control byte
// (below 0x20, or 0x7f) other than the horizontal tab. Bytes 0x80 and
// above (obs-text) are allowed. FuzzValidFieldValue holds it to httpguts.
func ValidFieldValue(v string) bool {
	// A read-only view of v's bytes: nothing writes through it, and it
	// does not outlive the call. The bytes go eight at a time through
	// one load, which indexing a string byte by byte does not get.
	return ValidFieldValueBytes(unsafe.Slice(unsafe.StringData(v), len(v)))
}

// ValidFieldValueBytes is ValidFieldValue of a byte slice.
func ValidFieldValueBytes(v []byte) bool {
	i := 0
	for ; i+8 <= len(v); i += 8 {
		if hasCTL(binary.LittleEndian.Uint64(v[i:])) && !validBytes(v[i:i+8]) {
			return false
		}
	}
	return validBytes(v[i:])
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasCTL reports whether one of x's eight bytes is below 0x20 or is 0x7f
// (a tab counts: the caller looks at those bytes one by one). Below 0x20
// is the "has less than n" test: a byte under n borrows in x-n*ones and
// so sets its high bit, which ^x keeps only for bytes under 0x80. 0x7f is
// the "has zero byte" test on x^0x7f.
func hasCTL(x uint64) bool {
	less := (x - 0x20*ones) &^ x & highs
	y := x ^ (0x7f * ones)
	del := (y - ones) &^ y & highs
	return less|del != 0
}

func validBytes(v []byte) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ASCIIEqualFold reports whether b, ASCII letters folded to lower case,
// is lower (which must be lower case already).
func ASCIIEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// HexVal is the value of the hexadecimal digit c, and whether c is one.
func HexVal(c byte) (byte, bool) {
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

// FieldHasValue reports whether a field's values hold one that is not
// empty or whitespace only: a field sent empty says nothing.
func FieldHasValue(vals []string) bool {
	for _, v := range vals {
		for i := 0; i < len(v); i++ {
			if v[i] != ' ' && v[i] != '\t' {
				return true
			}
		}
	}
	return false
}
