// Package logging builds Gatehouse's loggers: JSON event logs (slog) and the
// access log, one JSON line per request with fixed keys (logkey.go).
//
// The access log is written through a BufferedWriter: lines collect in
// memory and are flushed every FlushInterval, when the buffer fills, and at
// shutdown, so logging costs no system call per request and no line is lost
// on a clean exit.
package logging

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Fixed keys of the access log and event logs.
const (
	KeyRequestID  = "request_id"
	KeyTraceID    = "trace_id"
	KeyClientIP   = "client_ip"
	KeyMethod     = "method"
	KeyHost       = "host"
	KeyPath       = "path"
	KeyRoute      = "route"
	KeyUpstream   = "upstream"
	KeyStatus     = "status"
	KeyBytes      = "bytes"
	KeyDurationMS = "duration_ms"
	KeyUpstreamMS = "upstream_ms"
	KeyAttempts   = "attempts"
	KeyAuth       = "auth"
	KeyAuthReason = "auth_reason"
	KeyRateLimit  = "ratelimit"
	KeyErr        = "error"
	KeyConfig     = "config"
)

// FlushInterval bounds how long an access line waits in memory.
const FlushInterval = 100 * time.Millisecond

// BufferedWriter batches writes to an underlying writer.
type BufferedWriter struct {
	mu sync.Mutex // guards the following fields
	bw *bufio.Writer

	dst io.Writer
}

// NewBufferedWriter wraps dst with a 64 KiB buffer.
func NewBufferedWriter(dst io.Writer) *BufferedWriter {
	return &BufferedWriter{bw: bufio.NewWriterSize(dst, 64<<10), dst: dst}
}

// Write appends p; it reaches dst within FlushInterval.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bw.Write(p)
}

// Flush writes everything buffered.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bw.Flush()
}

// Run flushes every FlushInterval until ctx ends, then flushes once more.
func (b *BufferedWriter) Run(ctx context.Context) {
	t := time.NewTicker(FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = b.Flush()
			return
		case <-t.C:
			_ = b.Flush()
		}
	}
}

// ParseLevel maps a config level name to a slog.Level.
func ParseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewEventLogger returns a JSON logger for events (start, reload, errors).
func NewEventLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// OpenAccess opens the access log destination named in config: "stdout",
// "stderr", "off" or a file path (appended to). The returned closer is nil
// for stdout, stderr and off.
func OpenAccess(dest string) (io.Writer, io.Closer, error) {
	switch dest {
	case "off":
		return nil, nil, nil
	case "stdout":
		return os.Stdout, nil, nil
	case "stderr":
		return os.Stderr, nil, nil
	}
	f, err := OpenFile(dest)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// File is an access log file that can be opened again at its path: after
// logrotate has renamed it (its default mode), the lines would otherwise
// go on into the renamed file for good. Writes and Reopen may come from
// any goroutine.
type File struct {
	path string

	mu sync.Mutex // guards f
	f  *os.File
}

// OpenFile opens path for appending, creating it (mode 0640) if needed.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return &File{path: path, f: f}, nil
}

func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Write(p)
}

// Reopen opens the path again and writes there from now on, closing the
// file written until now. If the path cannot be opened, the old file
// stays in use and the error is returned.
func (f *File) Reopen() error {
	nf, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	f.mu.Lock()
	old := f.f
	f.f = nf
	f.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Close()
}
