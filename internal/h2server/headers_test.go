package h2server

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// blockDecoder decodes whole header blocks the way a connection does
// (writeWholeBlock, with its cache of repeated literals), beside a
// connection that gives them to its hpack.Decoder whole (as it does a
// block in several frames).
type blockDecoder struct {
	c, ref *conn
}

func newBlockDecoder(maxList int) *blockDecoder {
	newConn := func() *conn {
		c := &conn{srv: New(Config{MaxHeaderBytes: maxList})}
		c.hdec = hpack.NewDecoder(4096, c.emitField)
		c.hdec.SetMaxStringLength(int(c.srv.maxHeaderListSize()))
		return c
	}
	return &blockDecoder{c: newConn(), ref: newConn()}
}

// decode gives block to both; it reports the fields each took and
// whether each failed.
func (d *blockDecoder) decode(block []byte) (cached, plain []hpack.HeaderField, cachedErr, plainErr error) {
	run := func(c *conn, write func([]byte) (int, error)) ([]hpack.HeaderField, error) {
		b := &c.block
		b.fields, b.remain, b.invalid, b.sawRegular, b.meta.Truncated = b.fields[:0], c.srv.maxHeaderListSize(), nil, false, false
		c.hdec.SetEmitEnabled(true)
		_, err := write(block)
		if err == nil {
			err = c.hdec.Close()
		}
		return append([]hpack.HeaderField(nil), b.fields...), err
	}
	cached, cachedErr = run(d.c, d.c.writeWholeBlock)
	plain, plainErr = run(d.ref, d.ref.hdec.Write)
	return cached, plain, cachedErr, plainErr
}

// encodeBlocks encodes header lists with one encoder, as a client's
// requests on one connection; names starting with "!" are sent never
// indexed (the "!" dropped), as clients send credentials.
func encodeBlocks(lists ...[]string) [][]byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	var out [][]byte
	for _, kv := range lists {
		buf.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			name, sensitive := strings.CutPrefix(kv[i], "!")
			enc.WriteField(hpack.HeaderField{Name: name, Value: kv[i+1], Sensitive: sensitive})
		}
		out = append(out, bytes.Clone(buf.Bytes()))
	}
	return out
}

func token(c byte) string { return "Bearer " + strings.Repeat(string(c), 600) }

func TestRepeatedLiteralsDecodeAsWithoutTheCache(t *testing.T) {
	req := func(extra ...string) []string {
		return append([]string{":method", "GET", ":scheme", "https", ":authority", "a.example", ":path", "/"}, extra...)
	}
	blocks := encodeBlocks(
		req("!authorization", token('a')),
		req("!authorization", token('a'), "x-trace", strings.Repeat("t", 80)), // the same token beside a new indexed field
		req("!authorization", token('c')),                                     // another token, as long
		req("!authorization", token('a')),                                     // the first again
		req("!authorization", token('a'), "!x-api-key", strings.Repeat("k", 100), "!cookie", "s="+strings.Repeat("c", 200)),
		req("!cookie", "s="+strings.Repeat("c", 200), "!x-api-key", strings.Repeat("k", 100), "!authorization", token('a')),
		req("!Custom-Literal-Name", strings.Repeat("v", 90)), // a literal name (upper case: refused by emitField)
		req("!custom-literal-name", strings.Repeat("v", 90)),
		req("!custom-literal-name", strings.Repeat("v", 90)),
	)
	d := newBlockDecoder(1 << 20)
	hits := 0
	for i, block := range blocks {
		before := d.c.block.nextOut
		cached, plain, cerr, perr := d.decode(block)
		if cerr != nil || perr != nil {
			t.Fatalf("block %d: errors %v (cached) and %v (plain)", i, cerr, perr)
		}
		if fmt.Sprint(cached) != fmt.Sprint(plain) || d.c.block.invalid != d.ref.block.invalid {
			t.Errorf("block %d:\ncached %v\nplain  %v", i, cached, plain)
		}
		if d.c.block.nextOut == before && i > 0 {
			hits++ // nothing new remembered
		}
	}
	if hits == 0 {
		t.Error("no block was decoded from the cache alone")
	}
}

// A never-indexed literal named by a dynamic-table index depends on the
// table: the same bytes name another field once the table has changed,
// and must not come from the cache.
func TestLiteralNamedByDynamicIndexIsNotCached(t *testing.T) {
	withIndexed := func(name, value string) []byte {
		return append(append([]byte{0x40, byte(len(name))}, name...), append([]byte{byte(len(value))}, value...)...)
	}
	named62 := append([]byte{0x1f, 62 - 15, 70}, bytes.Repeat([]byte{'v'}, 70)...) // never indexed, name: dynamic entry 62
	d := newBlockDecoder(1 << 20)
	for i, block := range [][]byte{withIndexed("x-a", "1"), named62, withIndexed("x-b", "2"), named62} {
		cached, plain, cerr, perr := d.decode(block)
		if cerr != nil || perr != nil || fmt.Sprint(cached) != fmt.Sprint(plain) {
			t.Errorf("block %d: cached %v (%v), plain %v (%v)", i, cached, cerr, plain, perr)
		}
	}
}

// The header-list limit counts a field that came from the cache as it
// counts any other: the second request, the token and a longer field,
// is past the limit and truncated.
func TestRepeatedLiteralCountsAgainstTheLimit(t *testing.T) {
	d := newBlockDecoder(1000)
	blocks := encodeBlocks(
		[]string{":method", "GET", "!authorization", token('a')},
		[]string{":method", "GET", "!authorization", token('a'), "x-more", strings.Repeat("m", 700)},
	)
	if _, _, cerr, _ := d.decode(blocks[0]); cerr != nil || d.c.block.meta.Truncated {
		t.Fatalf("first block: %v, truncated %v", cerr, d.c.block.meta.Truncated)
	}
	cached, _, cerr, _ := d.decode(blocks[1])
	if cerr != nil || !d.c.block.meta.Truncated || len(cached) != 2 {
		t.Errorf("second block: %v, truncated %v, fields %d; want truncated after 2", cerr, d.c.block.meta.Truncated, len(cached))
	}
}

// FuzzRepeatedLiterals gives blocks a, b, a, b, a to a connection's
// decoder and to a plain hpack.Decoder: each block must fail on both or
// on neither, and emit the same fields.
func FuzzRepeatedLiterals(f *testing.F) {
	for _, pair := range [][2][]string{
		{{":method", "GET", "!authorization", token('a')}, {":path", "/", "!authorization", token('a'), "!cookie", strings.Repeat("c", 70)}},
		{{"!x-literal-name", strings.Repeat("v", 70), "x-indexed", strings.Repeat("i", 70)}, {"!x-literal-name", strings.Repeat("v", 70)}},
	} {
		bl := encodeBlocks(pair[0], pair[1])
		f.Add(bl[0], bl[1])
	}
	f.Add([]byte{0x3f, 0xe1, 0x1f}, []byte{0x10, 0x01, 'a', 0x7f, 0x00}) // a size update; a string past the block
	// Literals with incremental indexing, each block then naming its
	// own entry by index 62 (the newest): sent again, a literal must
	// be added to the table again.
	lit := func(name string, c byte) []byte {
		return append(append([]byte{0x40, byte(len(name))}, name...), append([]byte{70}, bytes.Repeat([]byte{c}, 70)...)...)
	}
	f.Add(append(lit("x-long", 'v'), 0x80|62), lit("x-other", 'w'))
	// A never-indexed authorization, then a table size update, which is
	// allowed only at a block's start: the cached literal must count
	// as the block's first field.
	auth := append([]byte{0x1f, 23 - 15, 70}, bytes.Repeat([]byte{'t'}, 70)...)
	f.Add(append(bytes.Clone(auth), 0x3f, 0xe1, 0x1f), append(lit("x-long", 'v'), auth...)) // the update: to 4096
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d := newBlockDecoder(4 << 10)
		for i, block := range [][]byte{a, b, a, b, a} {
			cached, plain, cerr, perr := d.decode(block)
			if (cerr != nil) != (perr != nil) {
				t.Fatalf("block %d: error %v with the cache, %v without", i, cerr, perr)
			}
			if cerr != nil {
				return // the connection ends
			}
			if fmt.Sprint(cached) != fmt.Sprint(plain) || d.c.block.invalid != d.ref.block.invalid || d.c.block.meta.Truncated != d.ref.block.meta.Truncated {
				t.Fatalf("block %d:\ncached %v\nplain  %v", i, cached, plain)
			}
		}
	})
}

// Set-Cookie (a secret) and X-Request-Id (new on every response) are
// sent never indexed; other fields go to the dynamic table, so that a
// repeated one is sent as an index.
func TestResponseFieldsKeptOutOfTheTable(t *testing.T) {
	var n atomic.Int64
	fr := rawFramer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", fmt.Sprintf("req-%d", n.Add(1)))
		w.Header().Set("Set-Cookie", "s=secret")
		w.Header().Set("X-Stable", "same on every response")
	}))
	block := encodeBlocks([]string{":method", "GET", ":scheme", "https", ":authority", "a.example", ":path", "/"})[0]
	var sensitive map[string]bool
	dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) { sensitive[hf.Name] = hf.Sensitive })
	var sizes []int
	for id := uint32(1); id <= 3; id += 2 {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if hf, ok := f.(*http2.HeadersFrame); ok && hf.StreamID == id {
				sensitive = map[string]bool{}
				if _, err := dec.Write(hf.HeaderBlockFragment()); err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(hf.HeaderBlockFragment()))
				break
			}
		}
		want := map[string]bool{":status": false, "x-request-id": true, "set-cookie": true, "x-stable": false, "content-length": false, "date": false}
		for name, s := range want {
			if got, ok := sensitive[name]; !ok || got != s {
				t.Errorf("stream %d: %s never indexed %v (sent: %v), want %v", id, name, got, ok, s)
			}
		}
	}
	// The second block names x-stable by index: 21 bytes of value less.
	if sizes[1] > sizes[0]-len("same on every response") {
		t.Errorf("header blocks of %d then %d bytes: x-stable was not indexed", sizes[0], sizes[1])
	}
}

// knownFieldsHeader is the response header for seed: fields drawn from
// a few names and values, so that many repeat from one response to the
// next; some have two values, some are long enough to evict entries
// from the encoder's table, some are sent never indexed.
func knownFieldsHeader(seed uint64) http.Header {
	rng := rand.New(rand.NewPCG(seed, 7))
	names := []string{"X-A", "X-B", "X-C", "Server", "Cache-Control", "Vary", "Set-Cookie", "X-Request-Id", "x-lower"}
	h := http.Header{"Content-Type": {"text/plain"}}
	for range 1 + rng.IntN(8) {
		k := names[rng.IntN(len(names))]
		var v string
		switch r := rng.IntN(10); {
		case r < 7:
			v = fmt.Sprintf("value-%d", rng.IntN(3))
		case r < 9:
			v = strings.Repeat(string(rune('a'+rng.IntN(26))), 200+rng.IntN(400))
		default:
			v = fmt.Sprintf("fresh-%d", seed)
		}
		h[k] = append(h[k], v)
	}
	return h
}

// A field the connection sends from what it knows (encodeKnown) decodes,
// in the client's decoder with its dynamic table, to what the handler
// set: across entries added and evicted, fields of two values, never
// indexed ones, and the table resized by the client (to 0 and back).
func TestKnownFieldsDecodeAsSent(t *testing.T) {
	fr := rawFramer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seed, _ := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, "/"), 10, 64)
		for k, vv := range knownFieldsHeader(seed) {
			w.Header()[k] = vv
		}
		io.WriteString(w, "ok")
	}))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	sizes := []uint32{4096, 200, 0, 1024, 4096, 64}
	// The same header for the last responses before a resize and the
	// first ones after it: sent from what the connection knows, unless
	// the resize made it forget.
	seedFor := func(i int) uint64 {
		if i%100 < 5 || i%100 >= 95 {
			return 10000 + uint64((i+5)/100)
		}
		return uint64(i)
	}
	var reqBuf bytes.Buffer
	reqEnc := hpack.NewEncoder(&reqBuf)
	for i := range 600 {
		if i%100 == 0 {
			if err := fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: sizes[i/100]}); err != nil {
				t.Fatal(err)
			}
		}
		id := uint32(2*i + 1)
		reqBuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "a.example"}, {":path", "/" + strconv.FormatUint(seedFor(i), 10)}} {
			reqEnc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: reqBuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		var got http.Header
		for got == nil {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == id {
				got = http.Header{}
				for _, hf := range mh.RegularFields() {
					if hf.Name != "date" && hf.Name != "content-length" {
						got[hf.Name] = append(got[hf.Name], hf.Value)
					}
				}
			}
		}
		want := http.Header{}
		for k, vv := range knownFieldsHeader(seedFor(i)) {
			want[strings.ToLower(k)] = vv
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("response %d (table size %d): (-want +got)\n%s", i, sizes[i/100], diff)
		}
	}
}
