package proxy

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// wsFrame builds one frame: opcode op (FIN set), payload of n bytes,
// the length in the given encoding (7, 16 or 64 bits), masked or not.
func wsFrame(op byte, n int, lenBits int, masked bool) []byte {
	b := []byte{0x80 | op, 0}
	switch lenBits {
	case 7:
		b[1] = byte(n)
	case 16:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if masked {
		b[1] |= 0x80
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, bytes.Repeat([]byte{'x'}, n)...)
}

// wsRefEnds parses b whole, the plain way: the offset where each
// complete frame ends, and its opcode.
func wsRefEnds(b []byte) (ends []uint64, ops []byte) {
	i := uint64(0)
	for {
		rest := b[i:]
		if len(rest) < 2 {
			return ends, ops
		}
		h := uint64(2)
		l := uint64(rest[1] & 0x7f)
		switch l {
		case 126:
			h = 4
		case 127:
			h = 10
		}
		if rest[1]&0x80 != 0 {
			h += 4
		}
		if uint64(len(rest)) < h {
			return ends, ops
		}
		switch l {
		case 126:
			l = uint64(binary.BigEndian.Uint16(rest[2:]))
		case 127:
			l = binary.BigEndian.Uint64(rest[2:])
		}
		if uint64(len(rest))-h < l {
			return ends, ops
		}
		i += h + l
		ends = append(ends, i)
		ops = append(ops, rest[0]&0x0f)
	}
}

// wsTrackEnds feeds b to a wsFrames in pieces cut at cuts (offsets into
// b, in any order, out of range ones ignored) and reports where it saw
// frames end, and whether it ends between frames.
func wsTrackEnds(b []byte, cuts []int) (ends []uint64, ops []byte, atEnd bool) {
	var f wsFrames
	off := 0
	feed := func(p []byte) {
		for len(p) > 0 {
			n := f.step(p)
			if n == 0 {
				panic("step took nothing")
			}
			p = p[n:]
			off += n
			if f.ended {
				ends = append(ends, uint64(off))
				ops = append(ops, f.op)
			}
		}
	}
	last := 0
	for _, c := range cuts {
		if c > last && c <= len(b) {
			feed(b[last:c])
			last = c
		}
	}
	feed(b[last:])
	return ends, ops, f.atBoundary()
}

func TestWSFramesBoundaries(t *testing.T) {
	t.Parallel()
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	text := wsFrame(0x1, 5, 7, false)
	tests := []struct {
		name   string
		stream []byte
		cuts   []int
	}{
		{name: "empty"},
		{name: "one small frame whole", stream: text},
		{name: "every byte apart", stream: cat(text, wsFrame(0x2, 3, 7, true)), cuts: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}},
		{name: "empty payloads", stream: cat(wsFrame(0x9, 0, 7, false), wsFrame(0xa, 0, 7, true), wsFrame(0x8, 0, 7, false))},
		{name: "125 bytes, the longest 7-bit length", stream: wsFrame(0x2, 125, 7, true), cuts: []int{1, 60}},
		{name: "16-bit length split in it", stream: cat(wsFrame(0x2, 300, 16, false), text), cuts: []int{3, 5, 200}},
		{name: "64-bit length split in it, masked", stream: cat(wsFrame(0x2, 70000, 64, true), text), cuts: []int{2, 7, 11, 13, 14, 40000}},
		{name: "fragments with a ping between", stream: cat(
			[]byte{0x01, 0x03, 'a', 'b', 'c'}, // text, not FIN
			wsFrame(0x9, 2, 7, false),
			[]byte{0x80, 0x01, 'd'}, // continuation, FIN
		), cuts: []int{4, 6}},
		{name: "incomplete header at the end", stream: cat(text, []byte{0x81, 126, 0x01}), cuts: []int{8}},
		{name: "incomplete payload at the end", stream: cat(text, wsFrame(0x1, 10, 7, false)[:6])},
		{name: "a length with the top bit set never ends", stream: cat(text, []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 'x'})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantEnds, wantOps := wsRefEnds(tt.stream)
			ends, ops, atEnd := wsTrackEnds(tt.stream, tt.cuts)
			if diff := cmp.Diff(wantEnds, ends); diff != "" {
				t.Errorf("frame ends (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantOps, ops); diff != "" {
				t.Errorf("opcodes (-want +got):\n%s", diff)
			}
			whole := len(wantEnds) == 0 && len(tt.stream) == 0 || len(wantEnds) > 0 && wantEnds[len(wantEnds)-1] == uint64(len(tt.stream))
			if atEnd != whole {
				t.Errorf("atBoundary at the end = %v, want %v", atEnd, whole)
			}
		})
	}
}

func TestWSCloseFrames(t *testing.T) {
	t.Parallel()
	if got, want := wsCloseGoingAway[:], []byte{0x88, 0x02, 0x03, 0xe9}; !bytes.Equal(got, want) {
		t.Errorf("server close frame % x, want % x", got, want)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f := wsMaskedClose(key)
	if f[0] != 0x88 || f[1] != 0x82 || !bytes.Equal(f[2:6], key[:]) {
		t.Fatalf("client close frame header % x", f[:6])
	}
	status := []byte{f[6] ^ key[0], f[7] ^ key[1]}
	if code := binary.BigEndian.Uint16(status); code != 1001 {
		t.Errorf("unmasked status %d, want 1001", code)
	}
}

func TestWSFramesStepAllocatesNothing(t *testing.T) {
	stream := bytes.Repeat(wsFrame(0x2, 20, 16, true), 8)
	var f wsFrames
	allocs := testing.AllocsPerRun(100, func() {
		for p := stream; len(p) > 0; {
			p = p[f.step(p):]
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per stream, want 0", allocs)
	}
}

// wsFuzzStream turns fuzz bytes into a stream of frames: each frame
// takes three bytes (opcode and flags, length class and mask, length)
// and its payload is that long, every length encoding used.
func wsFuzzStream(spec []byte) []byte {
	var out []byte
	for len(spec) >= 3 {
		op, lb, n := spec[0], spec[1], int(spec[2])
		spec = spec[3:]
		if lb&0x04 != 0 {
			n *= 300 // past 125, and at times past 65535
		}
		if len(out) > 1<<17 {
			break
		}
		var b []byte
		switch {
		case n > 65535 || lb&0x03 == 3:
			b = wsFrame(0, n, 64, lb&0x80 != 0)
		case n > 125 || lb&0x03 == 2:
			b = wsFrame(0, n, 16, lb&0x80 != 0)
		default:
			b = wsFrame(0, n, 7, lb&0x80 != 0)
		}
		b[0] = op // any FIN, RSV and opcode
		out = append(out, b...)
	}
	return out
}

// FuzzWSFramesMatchesWholeParse feeds frame streams, built from the
// input and the raw input itself, in pieces cut at random places, and
// checks that the tracker finds the frame ends a whole-buffer parse
// finds.
func FuzzWSFramesMatchesWholeParse(f *testing.F) {
	f.Add([]byte{0x81, 0x00, 5, 0x02, 0x84, 200, 0x88, 0x02, 2}, []byte{1, 3, 7, 20})
	f.Add([]byte{0x01, 0x80, 3, 0x89, 0x00, 0, 0x80, 0x03, 1}, []byte{2, 4, 9})
	f.Add([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b', 'c'}, []byte{5})
	f.Fuzz(func(t *testing.T, spec, cutBytes []byte) {
		if len(spec) > 4096 {
			return
		}
		for _, stream := range [][]byte{wsFuzzStream(spec), spec} {
			cuts := make([]int, len(cutBytes))
			for i, c := range cutBytes {
				// Cuts anywhere in the stream, spread by the byte's value.
				cuts[i] = int(c) * (len(stream)/255 + 1)
			}
			slices.Sort(cuts)
			wantEnds, wantOps := wsRefEnds(stream)
			ends, ops, atEnd := wsTrackEnds(stream, cuts)
			if diff := cmp.Diff(wantEnds, ends); diff != "" {
				t.Fatalf("stream % x cut at %v: frame ends (-want +got):\n%s", stream, cuts, diff)
			}
			if diff := cmp.Diff(wantOps, ops); diff != "" {
				t.Fatalf("stream % x: opcodes (-want +got):\n%s", stream, diff)
			}
			whole := len(stream) == 0 || len(wantEnds) > 0 && wantEnds[len(wantEnds)-1] == uint64(len(stream))
			if atEnd != whole {
				t.Fatalf("stream % x: atBoundary at the end = %v, want %v", stream, atEnd, whole)
			}
		}
	})
}
