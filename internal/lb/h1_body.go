package lb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Request bodies on the synchronous client.
//
// The caller writes the request head; one goroutine per request, the body
// writer (writeBody), copies the body to the connection with a pooled
// 32 KiB buffer, while the caller reads the response head as for any
// request. The Transport does the same with a write loop and a read loop
// per connection; here the writer lives only as long as its body.
//
// Framing is the Transport's (net/http transfer.go): a known length is
// sent as Content-Length and exactly that many bytes; an unknown one
// (ContentLength -1, or 0 with a Body, or Transfer-Encoding: chunked) as
// chunks, each flushed as it is read, then the request's trailers. A
// method that usually has no body (GET, HEAD, DELETE, OPTIONS, ...) with
// a body of unknown length stays on the Transport, which probes it for a
// first byte before choosing (bodyLength).
//
// What ends the writer, and what becomes of the connection:
//   - the body ends and is written: the writer arms the response header
//     timeout (which, as the Transport's, runs from the end of the
//     request, so a long upload is not a slow upstream) and ends;
//   - the body's read fails (the client went away or sent a malformed
//     body), or it is shorter or longer than its Content-Length: the
//     writer closes the connection at once, without flushing what it
//     holds, and never writes a chunked body's last chunk, so the
//     upstream sees an incomplete request and an end, never a complete
//     one; the round trip fails with that error (the body's own failure
//     comes first, as in net/http), or, when the response already came,
//     the connection is not reused;
//   - a write fails (the upstream closed, or reset): the writer ends and
//     the caller goes on reading, so an upstream that answered early and
//     closed (413, 401) is heard rather than turned into a write error
//     (the Transport returns whichever it sees first; golang/go#11745);
//   - the final response arrives while the writer runs (an early answer):
//     it is returned at once and its body can be read; the writer is
//     ended when that body ends (EOF or Close): waited for up to 50 ms
//     when only its last writes are left (net/http's
//     maxWriteWaitBeforeConnReuse), otherwise the connection is closed,
//     which ends a write, and the body's pending read is aborted
//     (readAborter), which ends a read; the connection is then never
//     reused;
//   - the round trip fails (no response, a timeout, the context
//     cancelled, which closes the connection): the connection is closed
//     and the writer waited for before the error is returned, as the
//     Transport waits for its write loop; a read of the body in progress
//     is let finish (it is bounded by the proxy's body read timeout).
//
// So the writer always ends before the round trip returns an error, and
// before the response body's Read returns EOF or its Close returns; a
// connection goes back to the idle list only when the writer ended
// without an error and the response was read cleanly.

// readAborter is a request body that can end, from another goroutine, a
// Read waiting for data, and every Read after it: the proxy's request
// bodies. A body that cannot is waited for.
type readAborter interface{ AbortRead() }

// The body writer's progress (h1Conn.wstage).
const (
	stageReading  int32 = iota // reading the body, or writing what it read
	stageFlushing              // the body has ended; its last bytes are being written
)

// maxWriteWait is how long the end of a response waits for a body writer
// that has only its last writes left before closing the connection
// (net/http's maxWriteWaitBeforeConnReuse).
const maxWriteWait = 50 * time.Millisecond

// bodyError marks a failure of the request body itself: its read failed,
// or its length was not the declared one. The writer closed the
// connection; the round trip returns err.
type bodyError struct{ err error }

func (e bodyError) Error() string { return e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// bodyLength is the length req's body is framed with, as the Transport
// frames it (Request.outgoingLength, transferWriter): ContentLength, or
// -1 for chunks. ok is false for a body this client leaves to the
// Transport: a transfer coding other than chunked, CONNECT, or an unknown
// length on a method that usually has no body (the Transport probes such
// a body for a first byte, with a timer, before choosing).
func bodyLength(req *http.Request) (cl int64, ok bool) {
	return framing(req.Method, req.ContentLength, req.TransferEncoding)
}

func framing(method string, cl int64, te []string) (int64, bool) {
	switch {
	case len(te) == 1 && te[0] == "chunked":
		cl = -1
	case len(te) > 0:
		return 0, false
	case cl <= 0:
		cl = -1 // a Body without a length is of unknown length
	}
	if method == http.MethodConnect {
		return 0, false
	}
	if cl < 0 {
		switch method {
		case "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
			return 0, false
		}
	}
	return cl, true
}

// trailerField is the Trailer field announcing a chunked body's trailer
// keys, as the Transport writes it: canonical, sorted, comma-separated;
// keys that are framing fields or not field names are refused.
func trailerField(trailer http.Header) (string, error) {
	keys := make([]string, 0, len(trailer))
	for k := range trailer {
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Transfer-Encoding", "Trailer", "Content-Length":
			return "", fmt.Errorf("invalid Trailer key %q", k)
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return "", fmt.Errorf("invalid Trailer key %q", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ","), nil
}

var (
	nopCloserType         = reflect.TypeOf(io.NopCloser(nil))
	nopCloserWriterToType = reflect.TypeOf(io.NopCloser(struct {
		io.Reader
		io.WriterTo
	}{}))
)

// inMemory reports whether body is one of the readers that never wait
// (net/http's isKnownInMemoryReader), or one that says how much it holds
// (Len, as the proxy's replay buffer does). The head of any other body is
// flushed before the body is read, as the Transport does (golang/go#22088):
// an upstream may answer the head while the body is slow to come.
func inMemory(r io.Reader) bool {
	switch r.(type) {
	case *bytes.Reader, *bytes.Buffer, *strings.Reader, interface{ Len() int }:
		return true
	}
	if t := reflect.TypeOf(r); t == nopCloserType || t == nopCloserWriterToType {
		return inMemory(reflect.ValueOf(r).Field(0).Interface().(io.Reader))
	}
	return false
}

// sendWithBody writes req's head, starts the body writer and reads the
// response head.
func (c *h1Client) sendWithBody(pc *h1Conn, req *http.Request, body io.ReadCloser, extra headBlock, info Informer, ra *respAlloc) (*http.Response, error) {
	cl, _ := bodyLength(req) // eligible
	var trailer http.Header
	var tf string
	if cl < 0 && len(req.Trailer) > 0 {
		var err error
		if tf, err = trailerField(req.Trailer); err != nil {
			return nil, err
		}
		trailer = req.Trailer
	}
	// The idle check, before anything is written: the head's flush does
	// not wait for the response (the body comes next), so writeAndAwait
	// does not make it.
	if pc.reused && (pc.br.Buffered() > 0 || pc.tlsIdleUnclean() || pc.idlePending()) {
		return nil, errIdleUnclean
	}
	if err := writeHead(pc.bw, req, extra, cl, tf); err != nil {
		return nil, err
	}
	if !inMemory(body) {
		if err := pc.bw.Flush(); err != nil {
			return nil, staleErr(err)
		}
	}
	// The header timeout runs from the end of the body (the writer arms
	// it), not from the head: a deadline left on the connection goes.
	if !pc.readDeadline.IsZero() {
		pc.readDeadline = time.Time{}
		pc.nc.SetReadDeadline(time.Time{})
	}
	pc.startWriter(c, body, cl, trailer)
	return c.readResponse(pc, req, info, ra)
}

// startWriter starts the body writer on pc. The caller owns it until it
// is joined (joinWriter, tryJoin, endWriter).
func (pc *h1Conn) startWriter(c *h1Client, body io.ReadCloser, cl int64, trailer http.Header) {
	if pc.wdone == nil {
		pc.wdone = make(chan error, 1)
		pc.writeFn = pc.writeBody // bound once: starting the writer allocates no closure
	}
	pc.c = c
	pc.wbody, pc.wcl, pc.wtrailer = body, cl, trailer
	pc.wearly, pc.warmed = false, time.Time{}
	pc.wstage.Store(stageReading)
	pc.bodyTaken, pc.writing = true, true
	go pc.writeFn()
}

// writeBody is the body writer: it copies the body, closes it, and
// reports how that went on wdone, as its last act.
func (pc *h1Conn) writeBody() {
	c := pc.c
	bp := c.bufs.Get().(*[]byte)
	var err error
	if pc.wcl >= 0 {
		err = pc.copyLength(*bp)
	} else {
		err = pc.copyChunked(*bp)
	}
	c.bufs.Put(bp)
	_ = pc.wbody.Close()
	var be bodyError
	switch {
	case errors.As(err, &be):
		pc.nc.Close() // never a complete request; nothing held is flushed
	case c.headerTimeout > 0:
		pc.wmu.Lock()
		if !pc.wearly {
			pc.warmed = c.now().Add(c.headerTimeout)
			pc.nc.SetReadDeadline(pc.warmed)
		}
		pc.wmu.Unlock()
	}
	pc.wdone <- err
}

// copyLength writes a body of length pc.wcl: exactly that many bytes.
func (pc *h1Conn) copyLength(buf []byte) error {
	body, cl := pc.wbody, pc.wcl
	var n int64
	for n < cl {
		p := buf
		if rest := cl - n; int64(len(p)) > rest {
			p = p[:rest]
		}
		m, rerr := body.Read(p)
		n += int64(m)
		if rerr != nil && rerr != io.EOF {
			return bodyError{rerr}
		}
		if n == cl && rerr == nil {
			// The body must end here. Checked before its last bytes go,
			// so a body longer than its length never makes a complete
			// request (the Transport sends the length, then fails).
			if extra, err := pc.bodyRest(body); err != nil {
				return bodyError{err}
			} else if extra {
				return bodyError{fmt.Errorf("http: ContentLength=%d with Body length %d", cl, n+1)}
			}
		}
		if n == cl {
			pc.wstage.Store(stageFlushing)
		}
		if m > 0 {
			// Each read goes as it comes, as the Transport's (its
			// writer copies a body that is not in memory straight to
			// the connection): a body sent slowly arrives as slowly.
			if _, err := pc.bw.Write(p[:m]); err != nil {
				return err
			}
			if n < cl && rerr == nil {
				if err := pc.bw.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF && n < cl {
			return bodyError{fmt.Errorf("http: ContentLength=%d with Body length %d", cl, n)}
		}
	}
	return pc.bw.Flush()
}

// bodyRest reports whether body has anything past what was read.
func (pc *h1Conn) bodyRest(body io.Reader) (bool, error) {
	for range 100 { // a reader that keeps returning nothing is broken (bufio's bound)
		m, err := body.Read(pc.wone[:])
		if m > 0 {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, io.ErrNoProgress
}

// copyChunked writes a body of unknown length as chunks, each flushed as
// it is read (the Transport's FlushAfterChunkWriter), then the last
// chunk and the trailer, only once the body has ended cleanly.
func (pc *h1Conn) copyChunked(buf []byte) error {
	body, bw := pc.wbody, pc.bw
	for {
		m, rerr := body.Read(buf)
		if rerr != nil && rerr != io.EOF {
			return bodyError{rerr}
		}
		if rerr == io.EOF {
			pc.wstage.Store(stageFlushing)
		}
		if m > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(m), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:m])
			if _, err := bw.WriteString("\r\n"); err != nil {
				return err
			}
			if rerr == nil {
				if err := bw.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	bw.WriteString("0\r\n")
	if len(pc.wtrailer) > 0 {
		for k := range pc.wtrailer {
			if !httpguts.ValidHeaderFieldName(k) {
				return bodyError{fmt.Errorf("invalid trailer field name %q", k)}
			}
		}
		// As the Transport writes them (Header.Write: sorted, line
		// breaks in values turned to spaces).
		if err := pc.wtrailer.Write(bw); err != nil {
			return err
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}

// finalArrived runs when the final response head has been read: from
// now on the writer arms no deadline (the response's body may take as
// long as it takes), and one it armed becomes the connection's (for
// readResponse to keep or clear).
func (pc *h1Conn) finalArrived() {
	pc.wmu.Lock()
	pc.wearly = true
	if !pc.warmed.IsZero() {
		pc.readDeadline = pc.warmed
	}
	pc.wmu.Unlock()
	pc.tryJoin()
}

// tryJoin joins the writer if it has ended; it reports whether none runs.
func (pc *h1Conn) tryJoin() bool {
	if !pc.writing {
		return true
	}
	select {
	case err := <-pc.wdone:
		pc.joined(err)
		return true
	default:
		return false
	}
}

// joinWriter waits for the writer, if one runs, and returns its result.
func (pc *h1Conn) joinWriter() error {
	if pc.writing {
		pc.joined(<-pc.wdone)
	}
	return pc.werr
}

func (pc *h1Conn) joined(err error) {
	pc.writing = false
	pc.werr = err
	pc.wbody, pc.wtrailer = nil, nil
}

// endWriter ends the writer as the response ends. clean reports whether
// the exchange allows reuse so far; endWriter reports whether it still
// does once the writer has ended (without an error, in time).
func (pc *h1Conn) endWriter(clean bool) bool {
	if pc.tryJoin() {
		return clean && pc.werr == nil
	}
	if clean && pc.wstage.Load() == stageFlushing {
		t := time.NewTimer(maxWriteWait)
		select {
		case err := <-pc.wdone:
			t.Stop()
			pc.joined(err)
			return err == nil
		case <-t.C:
		}
	}
	pc.close() // ends a write
	if pc.wstage.Load() == stageReading {
		if a, ok := pc.wbody.(readAborter); ok {
			a.AbortRead() // ends a read
		}
	}
	pc.joinWriter()
	return false
}

// isRequestError reports whether err is the request body's own failure.
func isRequestError(err error) bool {
	var be bodyError
	return errors.As(err, &be)
}
