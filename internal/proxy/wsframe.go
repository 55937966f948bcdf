package proxy

import "encoding/binary"

// WebSocket opcodes the tunnel cares about (RFC 6455 §5.2, §5.5.1).
const wsOpClose = 0x8

// wsFrames follows one direction of a WebSocket stream (RFC 6455 §5.2),
// fed in pieces of any size, and knows where each frame ends: the
// points between frames, where a control frame may be injected
// without breaking the frame in flight. Control frames may also go
// between the fragments of a message (§5.4), so every frame's end is
// such a point, fragmented message or not.
//
// A frame is a 2 to 14 byte header, then its payload:
//
//	byte 0     FIN, RSV1-3, opcode (4 bits)
//	byte 1     MASK, payload length (7 bits): 0-125 is the length,
//	           126: a 16-bit length follows, 127: a 64-bit length follows
//	+0/2/8     the extended length, big-endian
//	+0/4       the masking key, when MASK is set
//
// It checks nothing: an invalid frame is followed as its header reads
// (a length with the top bit set is just long). It allocates nothing,
// and is not safe for concurrent use. The zero value is at the start of
// a stream.
type wsFrames struct {
	left  uint64   // payload bytes of the current frame still to come
	hdr   [14]byte // the current frame's header, as far as it came
	nhdr  uint8    // bytes in hdr; 0 when between frames or in a payload
	op    uint8    // the opcode of the last frame whose header was read
	ended bool     // the last step ended a frame (op is that frame's)
}

// atBoundary reports whether the stream is between frames: everything
// fed so far is whole frames.
func (f *wsFrames) atBoundary() bool { return f.nhdr == 0 && f.left == 0 }

// step feeds p up to the end of the current frame, or all of p if the
// frame goes on past it, and returns how many bytes it took. When the
// frame ended within them, f.ended is set and f.op is its opcode. A
// frame with no payload ends with its header. Feeding a stream
// frame by frame: for len(p) > 0 { p = p[f.step(p):] }.
func (f *wsFrames) step(p []byte) int {
	f.ended = false
	n := 0
	if f.left == 0 {
		// In a header (or at its start).
		for len(p) > n {
			f.hdr[f.nhdr] = p[n]
			f.nhdr++
			n++
			if f.nhdr < 2 || int(f.nhdr) < wsHeaderLen(f.hdr[1]) {
				continue
			}
			f.left = wsPayloadLen(f.hdr[:f.nhdr])
			f.op = f.hdr[0] & 0x0f
			f.nhdr = 0
			if f.left == 0 {
				f.ended = true
				return n
			}
			break
		}
		if f.left == 0 {
			return n // the header is not complete yet
		}
	}
	k := uint64(len(p) - n)
	if k >= f.left {
		n += int(f.left)
		f.left = 0
		f.ended = true
		return n
	}
	f.left -= k
	return len(p)
}

// wsHeaderLen is the length of a frame header whose second byte is b1.
func wsHeaderLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4 // masking key
	}
	return n
}

// wsPayloadLen is the payload length in the complete header h.
func wsPayloadLen(h []byte) uint64 {
	switch l := h[1] & 0x7f; l {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(l)
	}
}

// wsCloseGoingAway is a close frame with status 1001, going away (RFC
// 6455 §7.4.1), as a server sends it: unmasked.
var wsCloseGoingAway = [4]byte{0x80 | wsOpClose, 2, 0x03, 0xe9}

// wsMaskedClose returns wsCloseGoingAway as a client sends it: masked
// with key (§5.3), which should come from a strong source of randomness.
func wsMaskedClose(key [4]byte) [8]byte {
	f := [8]byte{0x80 | wsOpClose, 0x80 | 2, key[0], key[1], key[2], key[3]}
	f[6] = wsCloseGoingAway[2] ^ key[0]
	f[7] = wsCloseGoingAway[3] ^ key[1]
	return f
}
