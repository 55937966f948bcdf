package netx

import "errors"

// A Waiter is told that the connection it waits on with a Poller is
// readable.
type Waiter interface {
	// Readable runs on the poller's goroutine, once per Wait that was not
	// forgotten first: it must not block (it starts a goroutine to read
	// the connection, typically).
	Readable()
}

// ErrReadable is Poller.Wait's answer for a connection readable already
// without a wait: a wrapper above the socket holds bytes (or an error)
// for the next Read. Read it now.
var ErrReadable = errors.New("netx: readable already")
