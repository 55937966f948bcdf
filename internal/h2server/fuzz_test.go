package h2server

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzServeConn feeds a connection arbitrary frames after the client
// preface and a SETTINGS frame. Whatever they are, the server must not
// panic, and it must finish the connection (ServeConn returns, every
// handler returns) once the client has closed its side: no frame
// sequence may wedge a goroutine. Seeds are valid exchanges: a GET, a
// POST with a body and trailers, a reset, a PING, a window update.
func FuzzServeConn(f *testing.F) {
	f.Add(seedFrames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/"), EndStream: true, EndHeaders: true})
	}))
	f.Add(seedFrames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block(":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/p", "content-length", "5", "trailer", "x-t"), EndHeaders: true})
		fr.WriteData(1, false, []byte("he"))
		fr.WriteDataPadded(1, false, []byte("llo"), make([]byte, 9))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("x-t", "v"), EndStream: true, EndHeaders: true})
		fr.WriteWindowUpdate(0, 1000)
	}))
	f.Add(seedFrames(func(fr *http2.Framer, block func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block(":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/"), EndHeaders: true})
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WritePing(false, [8]byte{1})
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: block(":method", "GET", ":scheme", "https", ":authority", "a", ":path", "/big"), EndStream: true, EndHeaders: true})
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 70000})
		fr.WriteWindowUpdate(5, 1)
		fr.WriteGoAway(5, http2.ErrCodeNo, nil)
	}))
	big := bytes.Repeat([]byte("x"), 100<<10)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Write(big)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Done")
		io.WriteString(w, "ok")
		w.Header().Set("X-Done", "1")
	})
	f.Fuzz(func(t *testing.T, frames []byte) {
		client, server := net.Pipe()
		srv := New(Config{MaxConcurrentStreams: 8, MaxHeaderBytes: 4 << 10, WriteTimeout: time.Second})
		done := make(chan struct{})
		var handlers atomic.Int64 // running
		go func() {
			defer close(done)
			srv.ServeConn(server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				handlers.Add(1)
				defer handlers.Add(-1)
				handler.ServeHTTP(w, r)
			}))
		}()
		go io.Copy(io.Discard, client) // the client reads everything
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(append([]byte(prefaceStr+"\x00\x00\x00\x04\x00\x00\x00\x00\x00"), frames...))
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after the client closed")
		}
		// Handlers see their stream's context end and their writes fail.
		for deadline := time.Now().Add(5 * time.Second); handlers.Load() > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%d handlers did not return after the connection ended", handlers.Load())
			}
			runtime.Gosched()
		}
	})
}

// seedFrames encodes frames written by write (header blocks through one
// HPACK encoder, as a client's would be).
func seedFrames(write func(fr *http2.Framer, block func(...string) []byte)) []byte {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	write(fr, block)
	return buf.Bytes()
}
