package h2server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient speaks just enough HTTP/2 to send GETs one at a time and
// read their responses, allocating nothing per request itself.
type rawClient struct {
	c     net.Conn
	br    *bufio.Reader
	block []byte // the request's header block
	next  uint32
	frame []byte
	hdr   [9]byte
}

func newRawClient(tb testing.TB, c net.Conn, extra ...hpack.HeaderField) *rawClient {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/bench"}, {"user-agent", "bench"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for _, f := range extra {
		enc.WriteField(f)
	}
	rc := &rawClient{c: c, br: bufio.NewReader(c), block: hb.Bytes(), next: 1}
	fr := http2.NewFramer(c, nil)
	if _, err := io.WriteString(c, prefaceStr); err != nil {
		tb.Fatal(err)
	}
	// Windows as large as allowed: the client never returns any.
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1}); err != nil {
		tb.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<31-1-initialWindow); err != nil {
		tb.Fatal(err)
	}
	return rc
}

// get sends one request and reads frames until its stream ends.
func (rc *rawClient) get(tb testing.TB) {
	id := rc.next
	rc.next += 2
	rc.frame = rc.frame[:0]
	l := len(rc.block)
	rc.frame = append(rc.frame, byte(l>>16), byte(l>>8), byte(l), byte(http2.FrameHeaders),
		byte(http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream), byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	rc.frame = append(rc.frame, rc.block...)
	if _, err := rc.c.Write(rc.frame); err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := io.ReadFull(rc.br, rc.hdr[:]); err != nil {
			tb.Fatal(err)
		}
		n := int(rc.hdr[0])<<16 | int(rc.hdr[1])<<8 | int(rc.hdr[2])
		typ, flags := http2.FrameType(rc.hdr[3]), http2.Flags(rc.hdr[4])
		sid := binary.BigEndian.Uint32(rc.hdr[5:]) & 0x7fffffff
		if _, err := rc.br.Discard(n); err != nil {
			tb.Fatal(err)
		}
		if typ == http2.FrameSettings && flags&http2.FlagSettingsAck == 0 {
			rc.c.Write([]byte{0, 0, 0, byte(http2.FrameSettings), byte(http2.FlagSettingsAck), 0, 0, 0, 0})
		}
		if typ == http2.FrameRSTStream && sid == id {
			tb.Fatal("stream reset")
		}
		if sid == id && (typ == http2.FrameData || typ == http2.FrameHeaders) && flags&http2.FlagDataEndStream != 0 {
			return
		}
	}
}

var body100 = []byte("0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")

// BenchmarkServeGET: one GET at a time on one connection (loopback
// TCP, no TLS), a handler that sets a header and writes 100 bytes.
func BenchmarkServeGET(b *testing.B) { benchmarkServeGET(b) }

// BenchmarkServeGETWithToken: every request carries a 600-byte bearer
// token, never indexed, as nghttp2 and browsers send credentials.
func BenchmarkServeGETWithToken(b *testing.B) {
	benchmarkServeGET(b, hpack.HeaderField{Name: "authorization", Value: "Bearer " + strings.Repeat("eyJhbGciOiJSUzI1NiJ9", 30), Sensitive: true})
}

func benchmarkServeGET(b *testing.B, extra ...hpack.HeaderField) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	srv := New(Config{ReuseRequestHeaders: true}) // as internal/app configures it
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		srv.ServeConn(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body100)
		}))
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	rc := newRawClient(b, c, extra...)
	rc.get(b)
	b.ReportAllocs()
	for b.Loop() {
		rc.get(b)
	}
}

// BenchmarkHeaderListTake is the snapshot of a proxied response's header
// taken at WriteHeader: eight fields, as an upstream's answer and the
// engine's own make.
func BenchmarkHeaderListTake(b *testing.B) {
	h := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"100"}, "Date": {"Tue, 08 Dec 2026 03:00:00 GMT"},
		"Server": {"nginx"}, "X-Request-Id": {"c2f874ebecd4-299phnut075vu"}, "Cache-Control": {"no-store"},
		"Vary": {"Accept-Encoding", "Origin"}, "Strict-Transport-Security": {"max-age=63072000"}}
	var l headerList
	b.ReportAllocs()
	for b.Loop() {
		l.take(h)
	}
}
