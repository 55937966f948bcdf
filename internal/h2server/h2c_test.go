package h2server

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A connection handed over with part of its preface read (cleartext
// HTTP/2 from h1server) must complete the preface by the deadline the
// first server started at accept, not a whole ReadHeaderTimeout later:
// a client trickling the preface would otherwise hold a connection for
// nearly twice the timeout.
func TestPrefaceDueByTheHandingServersDeadline(t *testing.T) {
	t.Parallel()
	s := New(Config{ReadHeaderTimeout: 20 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		s.ServeConnContext(context.Background(), server, http.NotFoundHandler(), start.Add(500*time.Millisecond))
	}()
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
	s := New(Config{ReadHeaderTimeout: 500 * time.Millisecond, IdleTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeConn(server, http.NotFoundHandler())
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }() // the server's SETTINGS
	_, _ = io.WriteString(client, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection that sent only the preface's 24 bytes is still served 10s on (read_header_timeout 500ms)")
	}
}
