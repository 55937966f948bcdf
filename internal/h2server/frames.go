package h2server

// The frames a client sends, processed by the connection's reading
// goroutine (serve) under c.mu.

import (
	"errors"
	"io"

	"golang.org/x/net/http2"
)

// processFrame handles one frame from the client. It returns an
// http2.StreamError or http2.ConnectionError for protocol errors, or
// another error to drop the connection.
func (c *conn) processFrame(f http2.Frame) (err error) {
	if !c.sawSettings {
		if _, ok := f.(*http2.SettingsFrame); !ok {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.sawSettings = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		// A stream error is answered under the lock the frame was
		// processed under: a handler the frame woke (its body failed:
		// DATA past Content-Length) must find its stream reset, not get
		// its response out first (a race the h2 differential tests hit).
		if err != nil {
			c.resetOnStreamErrorLocked(&err)
		}
	}()
	if c.closed {
		return errClientDisconnected
	}
	// After GOAWAY, frames of streams the client opened past the last
	// one we took, and after an error all frames, are dropped; their
	// DATA still counts against, and is returned to, the connection
	// window (RFC 9113 §6.8).
	if c.goAway && (c.goAwayCode != http2.ErrCodeNo || f.Header().StreamID > c.maxClientID) {
		if df, ok := f.(*http2.DataFrame); ok {
			if !c.inflow.take(df.Length) {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
			c.returnConnWindowLocked(int(df.Length))
		}
		return nil
	}

	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.MetaHeadersFrame:
		return c.processHeaders(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		if f.StreamID != 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.appendPing(f.Data)
		return c.queuedControlLocked()
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.RSTStreamFrame:
		st, idle := c.stateLocked(f.StreamID)
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if st != nil {
			c.closeStreamLocked(st, http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
		}
		return nil
	case *http2.PriorityFrame:
		if f.StreamID == f.StreamDep {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
		return nil
	case *http2.GoAwayFrame:
		c.goAwayLocked(http2.ErrCodeNo)
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	default:
		return nil // unknown frame types and PRIORITY_UPDATE are ignored
	}
}

// stateLocked is the stream with id, or nil; idle reports an id the
// client has not used yet (or an even one, which it cannot use).
func (c *conn) stateLocked(id uint32) (st *stream, idle bool) {
	if st := c.streams[id]; st != nil {
		return st, false
	}
	return nil, id%2 == 0 || id > c.maxClientID
}

// queuedControlLocked counts a control frame queued by the reader and
// starts a write for it; a client that keeps the server queueing them
// without reading loses the connection.
func (c *conn) queuedControlLocked() error {
	c.ctrlQueued++
	if c.ctrlQueued > maxQueuedControl {
		return errors.New("http2: too many control frames queued")
	}
	c.kickLocked()
	return nil
}

func (c *conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		c.unackedSettings--
		if c.unackedSettings < 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	if f.NumSettings() > 100 || f.HasDuplicates() {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			c.enc.SetMaxDynamicTableSize(s.Val) // may evict entries
			c.known.clear()
		case http2.SettingInitialWindowSize:
			growth := int32(s.Val) - c.initialSendWindow
			c.initialSendWindow = int32(s.Val)
			for _, st := range c.streams {
				if !addWindow(&st.sendWindow, growth) {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.cond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame = int32(min(s.Val, maxWriteFrame))
		case http2.SettingNoRFC7540Priorities:
			if s.Val > 1 {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.appendSettingsAck()
	return c.queuedControlLocked()
}

func (c *conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	if f.StreamID == 0 {
		if !addWindow(&c.sendWindow, int32(f.Increment)) {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.cond.Broadcast()
		return nil
	}
	st, idle := c.stateLocked(f.StreamID)
	if idle {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st == nil {
		return nil // a closed stream: allowed (RFC 9113 §6.9)
	}
	if !addWindow(&st.sendWindow, int32(f.Increment)) {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	c.cond.Broadcast()
	return nil
}

// addWindow adds n to a send window, reporting false past 2^31-1.
func addWindow(w *int32, n int32) bool {
	sum := int64(*w) + int64(n)
	if sum > 1<<31-1 {
		return false
	}
	*w = int32(sum)
	return true
}

// inflow is a receive window: what the client may still send (avail)
// and what has been consumed but not yet returned to it (unsent).
type inflow struct {
	avail  int32
	unsent int32
}

// take charges n received bytes, reporting false past the window.
func (f *inflow) take(n uint32) bool {
	if n > uint32(f.avail) {
		return false
	}
	f.avail -= int32(n)
	return true
}

// add returns n consumed bytes to the window; it reports how much to
// announce now in a WINDOW_UPDATE (0: wait for more, so that updates
// come in steps of inflowMinRefresh, as net/http's do).
func (f *inflow) add(n int) int32 {
	f.unsent += int32(n)
	if f.unsent < inflowMinRefresh && f.unsent < f.avail {
		return 0
	}
	sent := f.unsent
	f.avail += sent
	f.unsent = 0
	return sent
}

// returnConnWindowLocked returns n bytes of the connection window for
// data no handler will read.
func (c *conn) returnConnWindowLocked(n int) {
	if n <= 0 {
		return
	}
	if inc := c.inflow.add(n); inc > 0 {
		c.appendWindowUpdate(0, uint32(inc))
		c.kickLocked()
	}
}

// resetOnStreamErrorLocked answers *err, if it is a stream error, with
// RST_STREAM, and leaves nil in its place, or errControlFlood when the
// client has let too many control frames queue. Apart from processFrame
// so that its error variable, which escapes, is made only for an error:
// not once per frame.
func (c *conn) resetOnStreamErrorLocked(err *error) {
	var se http2.StreamError
	if errors.As(*err, &se) {
		*err = nil
		if !c.resetFromReaderLocked(se) {
			*err = errControlFlood
		}
	}
}

func (c *conn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	st, idle := c.stateLocked(id)
	if id == 0 || idle {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st == nil || st.remoteClosed || st.gotTrailers || st.resetSent {
		// Not open for data: still charge the connection window, and
		// return it, since no handler will read this.
		if !c.inflow.take(f.Length) {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.returnConnWindowLocked(int(f.Length))
		if st != nil && st.resetSent || st == nil && c.resetRecently(id) {
			return nil // sent before the client saw our reset
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	data := f.Data()
	if st.declLen != -1 && st.gotBytes+int64(len(data)) > st.declLen {
		if !c.inflow.take(f.Length) {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.returnConnWindowLocked(int(f.Length))
		st.failBodyLocked(errors.New("sender tried to send more than declared Content-Length"))
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if f.Length > 0 {
		if f.Length > uint32(c.inflow.avail) {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		if f.Length > uint32(st.inflow.avail) {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
		}
		c.inflow.take(f.Length)
		st.inflow.take(f.Length)
		st.gotBytes += int64(len(data))
		if st.bodyErr == nil {
			// Bytes already read go before the slice grows: else they
			// are copied along and kept, and a body that is read while
			// more keeps arriving (never emptying the buffer) is held
			// whole, whatever the windows (1 MiB) bound.
			if st.bodyOff > 0 && len(st.body)+len(data) > cap(st.body) {
				n := copy(st.body, st.body[st.bodyOff:])
				st.body, st.bodyOff = st.body[:n], 0
			}
			st.body = append(st.body, data...)
			st.cond.Broadcast()
		} else {
			// The handler closed the body: nobody reads this.
			c.returnConnWindowLocked(len(data))
		}
		// Padding is never read: return it now.
		if pad := int(f.Length) - len(data); pad > 0 {
			c.returnConnWindowLocked(pad)
			if inc := st.inflow.add(pad); inc > 0 {
				c.appendWindowUpdate(id, uint32(inc))
				c.kickLocked()
			}
		}
	}
	if f.StreamEnded() {
		c.endRequestBodyLocked(st)
	}
	return nil
}

// endRequestBodyLocked ends a request's body at END_STREAM: EOF, or an
// error when the declared Content-Length was not reached.
func (c *conn) endRequestBodyLocked(st *stream) {
	if st.declLen != -1 && st.declLen != st.gotBytes {
		st.failBodyLocked(errors.New("request declared a Content-Length it did not send"))
	} else {
		st.failBodyLocked(io.EOF)
	}
	st.remoteClosed = true
	if st.localClosed {
		c.closeStreamLocked(st, errHandlerComplete)
	}
}
