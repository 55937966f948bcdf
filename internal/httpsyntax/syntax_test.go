package httpsyntax

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestValidFieldValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 30)
	for _, tc := range []struct {
		name string
		v    string
		want bool
	}{
		{"empty", "", true},
		{"short", "abc", true},
		{"token", "Bearer " + long, true},
		{"tab inside a word", "a\tb c d e f g h", true},
		{"obs-text", "caf\xc3\xa9 \xff\x80\x9f", true},
		{"space and tilde", strings.Repeat(" ~", 20), true},
		{"NUL in the first word", "ab\x00cdefghij", false},
		{"LF in a later word", long + "\n" + long, false},
		{"CR at the end", long + "\r", false},
		{"DEL in a word", "abcdefg\x7fhijklmn", false},
		{"DEL in the tail", "abcdefgh\x7f", false},
		{"0x1f", strings.Repeat("x", 16) + "\x1f" + strings.Repeat("y", 7), false},
		{"0x20 is fine", strings.Repeat("\x20", 16), true},
		{"0x7e and 0x80 next to each other", strings.Repeat("\x7e\x80", 8), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidFieldValue(tc.v); got != tc.want {
				t.Errorf("ValidFieldValue(%q) = %v, want %v", tc.v, got, tc.want)
			}
			if got := ValidFieldValueBytes([]byte(tc.v)); got != tc.want {
				t.Errorf("ValidFieldValueBytes([]byte(%q)) = %v, want %v", tc.v, got, tc.want)
			}
			if ref := httpguts.ValidHeaderFieldValue(tc.v); ref != tc.want {
				t.Errorf("the case is wrong: httpguts says %v", ref)
			}
		})
	}
}

// Every single byte, at every position of a word and in the tail, against
// httpguts.
func TestValidFieldValueEveryByte(t *testing.T) {
	t.Parallel()
	for c := range 256 {
		for pos := range 11 {
			b := []byte(strings.Repeat("a", 11))
			b[pos] = byte(c)
			if got, want := ValidFieldValueBytes(b), httpguts.ValidHeaderFieldValue(string(b)); got != want {
				t.Fatalf("byte %#x at %d: %v, httpguts %v", c, pos, got, want)
			}
		}
	}
}

func FuzzValidFieldValue(f *testing.F) {
	for _, s := range []string{"", "abc", "a\tb", "\x7f", "\x00\x01", "Bearer eyJ0eXAiOiJKV1QifQ", "\xff\xfe\x80\x7e\x20\x1f\x09\x0a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidFieldValue(s), httpguts.ValidHeaderFieldValue(s); got != want {
			t.Fatalf("ValidFieldValue(%q) = %v, httpguts %v", s, got, want)
		}
		if got := ValidFieldValueBytes([]byte(s)); got != ValidFieldValue(s) {
			t.Fatalf("the []byte and string forms differ on %q", s)
		}
	})
}

func TestASCIIEqualFold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b, lower string
		want     bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "content-length", true},
		{"content-lengt", "content-length", false},
		{"Content-Lengtx", "content-length", false},
		{"Host", "host", true},
		{"H\xc3\x98st", "høst", false}, // Ø is not folded: ASCII only
	} {
		if got := ASCIIEqualFold([]byte(tc.b), tc.lower); got != tc.want {
			t.Errorf("ASCIIEqualFold(%q, %q) = %v, want %v", tc.b, tc.lower, got, tc.want)
		}
	}
}

func BenchmarkValidFieldValue(b *testing.B) {
	v := "Bearer " + strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 30)
	b.Run("httpsyntax", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			if !ValidFieldValue(v) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("httpguts", func(b *testing.B) {
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			if !httpguts.ValidHeaderFieldValue(v) {
				b.Fatal("refused")
			}
		}
	})
}

func TestHexVal(t *testing.T) {
	t.Parallel()
	for c := range 256 {
		v, ok := HexVal(byte(c))
		want, err := strconv.ParseUint(string(rune(c)), 16, 8)
		if ok != (err == nil) || ok && uint64(v) != want {
			t.Errorf("HexVal(%q) = %d, %v; strconv: %d, %v", rune(c), v, ok, want, err)
		}
	}
}
