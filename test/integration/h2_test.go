//go:build integration

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"gatehouse/internal/testutil"
)

// h2Gate is Gatehouse with a small HTTP/2 stream limit in front of an
// upstream whose ?do=hold requests wait until their client leaves.
func h2Gate(t *testing.T) (addr string, up *upstream) {
	t.Helper()
	up = startUpstream(t, "app")
	addr = testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server: { listen: [%q], http2_max_concurrent_streams: 10, max_header_bytes: 16KiB }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
`, addr, up.Addr), addr)
	return addr, up
}

// h2Conn opens a cleartext HTTP/2 connection with prior knowledge.
func h2Conn(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return c, fr
}

func headerBlock(path string, extra ...hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "gw.test"}, {Name: ":path", Value: path}}, extra...) {
		_ = enc.WriteField(f)
	}
	return buf.Bytes()
}

// watchGoAway reads frames until the connection ends and reports the
// GOAWAY code the server sent, if any.
func watchGoAway(fr *http2.Framer) <-chan http2.ErrCode {
	got := make(chan http2.ErrCode, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				got <- 0xff // closed without GOAWAY
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				got <- ga.ErrCode
				return
			}
		}
	}()
	return got
}

// A client that opens streams and resets them at once, faster than
// handlers finish (HTTP/2 rapid reset, CVE-2023-44487), is disconnected
// with ENHANCE_YOUR_CALM; other clients are served meanwhile.
func TestHTTP2RapidResetIsCut(t *testing.T) {
	addr, _ := h2Gate(t)
	c, fr := h2Conn(t, addr)
	goAway := watchGoAway(http2.NewFramer(io.Discard, c))
	block := headerBlock("/flood?do=hold&id=rapid")
	sent := 0
	for id := uint32(1); id < 20000; id += 2 {
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		sent++
	}
	select {
	case code := <-goAway:
		if code != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", code)
		}
		t.Logf("rapid-reset client cut (GOAWAY %v) after writing %d of 10000 open+reset pairs", code, sent)
	case <-time.After(20 * time.Second):
		t.Fatalf("a rapid-reset client sent %d streams and was not disconnected", sent)
	}
	resp, err := http.Get("http://" + addr + "/after")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a normal client after the flood: %d", resp.StatusCode)
	}
}

// A header block that never ends (HEADERS, then CONTINUATION frames
// forever) is refused once it passes max_header_bytes: the server closes
// the connection instead of buffering it (CVE-2023-45288).
func TestHTTP2ContinuationFloodIsCut(t *testing.T) {
	addr, _ := h2Gate(t)
	c, fr := h2Conn(t, addr)
	goAway := watchGoAway(http2.NewFramer(io.Discard, c))
	var pad bytes.Buffer
	enc := hpack.NewEncoder(&pad)
	for i := 0; pad.Len() < 16000; i++ {
		_ = enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: strings.Repeat("a", 900)})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("/x"), EndHeaders: false}); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	var werr error
	for written.Load() < 64<<20 { // 64 MiB: far past any sane header block
		if werr = fr.WriteContinuation(1, false, pad.Bytes()); werr != nil {
			break
		}
		written.Add(int64(pad.Len()))
	}
	select {
	case code := <-goAway:
		t.Logf("CONTINUATION flood cut after %d KiB written (GOAWAY %v, write error %v)", written.Load()>>10, code, werr)
	case <-time.After(10 * time.Second):
		t.Fatalf("the server kept reading an endless header block (%d MiB written)", written.Load()>>20)
	}
	if werr == nil {
		t.Fatalf("the server accepted %d MiB of one header block", written.Load()>>20)
	}
	var ne net.Error
	if errors.As(werr, &ne) && ne.Timeout() {
		t.Fatalf("writes stalled instead of the connection being closed: %v", werr)
	}
}
