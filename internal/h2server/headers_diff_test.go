package h2server

// The connection's own header-block decoding (readFrame/readHeaderBlock/writeWholeBlock with its literal
// cache) held frame for frame to x/net's Framer.ReadMetaHeaders
// (readMetaFrame), over random sequences of header blocks on one
// connection.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// blockOutcome is what reading one header block gave: the fields, the
// Truncated flag, or the error's kind and code.
type blockOutcome struct {
	Err       string
	Fields    []hpack.HeaderField
	Truncated bool
}

func outcomeOf(f http2.Frame, err error) blockOutcome {
	var ce http2.ConnectionError
	var se http2.StreamError
	switch {
	case errors.As(err, &ce):
		return blockOutcome{Err: "conn " + http2.ErrCode(ce).String()}
	case errors.As(err, &se):
		return blockOutcome{Err: fmt.Sprintf("stream %d %v", se.StreamID, se.Code)}
	case err != nil:
		return blockOutcome{Err: "other: " + err.Error()}
	}
	mh, ok := f.(*http2.MetaHeadersFrame)
	if !ok {
		return blockOutcome{Err: fmt.Sprintf("frame %T", f)}
	}
	return blockOutcome{Fields: append([]hpack.HeaderField(nil), mh.Fields...), Truncated: mh.Truncated}
}

// reviewField is a random field: valid, malformed, long or a repeated token.
func reviewField(r *rand.Rand, tokens []string) hpack.HeaderField {
	names := []string{":method", ":path", ":scheme", ":authority", ":status", ":foo", "authorization", "cookie",
		"x-a", "x-long-literal-name", "X-Upper", "x a", "", "user-agent", "accept"}
	values := []string{"GET", "/", "https", "a.example", "v", "a\nb", "a\x00b", " sp ", ""}
	hf := hpack.HeaderField{Name: names[r.Intn(len(names))]}
	switch r.Intn(4) {
	case 0, 1:
		hf.Value = tokens[r.Intn(len(tokens))]
	case 2:
		hf.Value = values[r.Intn(len(values))]
	default:
		hf.Value = strings.Repeat(string(rune('a'+r.Intn(26))), r.Intn(3000))
	}
	hf.Sensitive = r.Intn(2) == 0
	return hf
}

// TestReadHeaderBlockMatchesReadMetaFrame writes the same random
// frames to a connection's reader and to a Framer with ReadMetaHeaders
// and compares what each block gave. Both connections end at the first
// connection error.
func TestReadHeaderBlockMatchesReadMetaFrame(t *testing.T) {
	kinds := map[string]int{}
	defer func() { t.Logf("outcomes: %v", kinds) }()
	for seed := int64(0); seed < 5000; seed++ {
		r := rand.New(rand.NewSource(seed))
		maxBytes := []int{600, 2000, 8000, 1 << 20}[r.Intn(4)]
		tokens := []string{"Bearer " + strings.Repeat("t", 60+r.Intn(40)), "Bearer " + strings.Repeat("u", 300), strings.Repeat("c", 70)}

		var wire bytes.Buffer
		wfr := http2.NewFramer(&wire, nil)
		wfr.AllowIllegalWrites = true
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		nblocks := 1 + r.Intn(12)
		var lists [][]hpack.HeaderField
		for i := range nblocks {
			var list []hpack.HeaderField
			if len(lists) > 0 && r.Intn(3) == 0 {
				list = lists[r.Intn(len(lists))] // repeated: the cache's case
			} else {
				if r.Intn(10) < 7 {
					list = append(list, hpack.HeaderField{Name: ":method", Value: "GET"}, hpack.HeaderField{Name: ":scheme", Value: "https"},
						hpack.HeaderField{Name: ":path", Value: "/" + strings.Repeat("p", r.Intn(100)), Sensitive: r.Intn(2) == 0})
					for range r.Intn(5) {
						list = append(list, hpack.HeaderField{Name: []string{"authorization", "cookie", "x-long-literal-name", "accept"}[r.Intn(4)],
							Value: tokens[r.Intn(len(tokens))], Sensitive: r.Intn(3) != 0})
					}
				}
				for range r.Intn(4) {
					list = append(list, reviewField(r, tokens))
				}
			}
			lists = append(lists, list)
			if r.Intn(8) == 0 {
				enc.SetMaxDynamicTableSizeLimit(uint32(r.Intn(4097)))
			}
			hb.Reset()
			for _, hf := range list {
				enc.WriteField(hf)
			}
			block := bytes.Clone(hb.Bytes())
			if r.Intn(20) == 0 && len(block) > 0 { // corrupt a byte
				block[r.Intn(len(block))] ^= byte(1 + r.Intn(255))
			}
			id := uint32(2*i + 1)
			// One frame, or several.
			cut := []int{len(block)}
			if r.Intn(3) == 0 && len(block) > 1 {
				cut = nil
				for range 1 + r.Intn(4) {
					cut = append(cut, r.Intn(len(block)+1))
				}
				cut = append(cut, len(block))
				slices.Sort(cut)
			}
			prev := 0
			for j, end := range cut {
				last := j == len(cut)-1
				if j == 0 {
					wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[prev:end], EndStream: true, EndHeaders: last})
				} else {
					wfr.WriteContinuation(id, last, block[prev:end])
				}
				prev = end
			}
		}
		raw := wire.Bytes()

		c := &conn{srv: New(Config{MaxHeaderBytes: maxBytes})}
		c.fr = http2.NewFramer(io.Discard, bytes.NewReader(raw))
		c.fr.SetMaxReadFrameSize(maxReadFrame)
		c.hdec = hpack.NewDecoder(4096, c.emitField)
		c.hdec.SetMaxStringLength(int(c.srv.maxHeaderListSize()))

		ref := http2.NewFramer(io.Discard, bytes.NewReader(raw))
		ref.SetMaxReadFrameSize(maxReadFrame)
		ref.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		ref.MaxHeaderListSize = c.srv.maxHeaderListSize()

		for i := 0; ; i++ {
			gf, gerr := c.readFrame()
			got := outcomeOf(gf, gerr)
			wf, werr := ref.ReadFrame()
			want := outcomeOf(wf, werr)
			if gerr == io.EOF && werr == io.EOF {
				break
			}
			if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
				t.Fatalf("seed %d (limit %d), block %d:\ngot  %.600s\nwant %.600s", seed, maxBytes, i, g, w)
			}
			switch {
			case got.Err != "":
				kinds[strings.Fields(got.Err)[0]+" "+strings.Fields(got.Err)[len(strings.Fields(got.Err))-1]]++
			case got.Truncated:
				kinds["truncated"]++
			default:
				kinds["ok"]++
			}
			if gf == &c.block.meta {
				c.releaseHeaderBlock()
			}
			if strings.HasPrefix(got.Err, "conn") || strings.HasPrefix(got.Err, "other") {
				break
			}
		}
	}
}

// TestPooledHeaderMapsUnderConcurrency: many streams at once on a few
// connections, each response with its own fields (some past
// maxPooledFields, so that maps are both pooled and let go), a 103 with
// its own Link, a snapshot edited after WriteHeader, and trailers both
// declared and "Trailer:"-prefixed. Every response must carry exactly
// its own values (a map or value array shared between two live
// responses would show another's), and -race must stay quiet.
func TestPooledHeaderMapsUnderConcurrency(t *testing.T) {
	url, client := newTestServer(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		id := strconv.Itoa(n)
		h := w.Header()
		h.Set("Link", "</"+id+">; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		h.Del("Link")
		extra := n % 50 // past maxPooledFields for some
		for i := range extra {
			h.Add(fmt.Sprintf("X-F%d", i), id)
		}
		h.Add("Set-Cookie", "s="+id)
		h.Add("Set-Cookie", "t="+id)
		h.Set("X-Id", id)
		h.Set("Trailer", "X-Declared")
		w.WriteHeader(http.StatusOK)
		h.Set("X-Id", "changed after WriteHeader")
		io.WriteString(w, id)
		h.Set("X-Declared", id)
		h.Set(http.TrailerPrefix+"X-Prefixed", id)
	}))
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := strconv.Itoa(i)
			resp, err := client.Get(url + "/?n=" + id)
			if err != nil {
				errs <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bad := func(what string, got any) { errs <- fmt.Sprintf("response %s: %s %v", id, what, got) }
			if string(body) != id {
				bad("body", string(body))
			}
			if got := resp.Header.Get("X-Id"); got != id {
				bad("X-Id", got)
			}
			if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "s="+id || got[1] != "t="+id {
				bad("Set-Cookie", got)
			}
			if _, ok := resp.Header["Link"]; ok {
				bad("Link in the final response", resp.Header["Link"])
			}
			nf := 0
			for k, vv := range resp.Header {
				if strings.HasPrefix(k, "X-F") {
					nf++
					if len(vv) != 1 || vv[0] != id {
						bad(k, vv)
					}
				}
			}
			if nf != i%50 {
				bad("X-F fields", nf)
			}
			if got := resp.Trailer.Get("X-Declared"); got != id {
				bad("trailer X-Declared", got)
			}
			if got := resp.Trailer.Get("X-Prefixed"); got != id {
				bad("trailer X-Prefixed", got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
