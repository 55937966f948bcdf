package h2server

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// servePair serves one end of a socket pair with s, starting the
// preface's clock at prefaceBy (zero: none), and returns the client's
// end and a channel closed once the server is done with the connection.
func servePair(t *testing.T, s *Server, prefaceBy time.Time) (io.ReadWriter, <-chan struct{}) {
	t.Helper()
	client, server := testutil.SocketPair(t)
	t.Cleanup(func() { client.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeConnContext(context.Background(), server, http.NotFoundHandler(), prefaceBy)
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }() // the server's SETTINGS
	return client, done
}

// A connection handed over with part of its preface read (cleartext
// HTTP/2 from h1server) must complete the preface by the deadline the
// first server started at accept, not a whole ReadHeaderTimeout later:
// a client trickling the preface would otherwise hold a connection for
// nearly twice the timeout.
func TestPrefaceDueByTheHandingServersDeadline(t *testing.T) {
	t.Parallel()
	start := time.Now()
	client, done := servePair(t, New(Config{ReadHeaderTimeout: 20 * time.Second}), start.Add(500*time.Millisecond))
	_, _ = io.WriteString(client, "PRI * HTTP/2.0\r\n\r\nSM\r\n") // all but the last two bytes
	select {
	case <-done:
		if took := time.Since(start); took < 400*time.Millisecond {
			t.Fatalf("closed after %v, before the deadline", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection is still served 10s on, past its 500ms preface deadline")
	}
}

// The connection preface is the 24 bytes and the SETTINGS frame that
// must follow them (RFC 9113 §3.4): a client that sends the bytes and
// nothing more is closed at the preface's deadline, not kept until the
// idle timeout.
func TestPrefaceIncludesTheSettingsFrame(t *testing.T) {
	t.Parallel()
	client, done := servePair(t, New(Config{ReadHeaderTimeout: 500 * time.Millisecond, IdleTimeout: time.Minute}), time.Time{})
	_, _ = io.WriteString(client, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection that sent only the preface's 24 bytes is still served 10s on (read_header_timeout 500ms)")
	}
}
