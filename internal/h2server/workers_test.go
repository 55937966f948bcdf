package h2server_test

import (
	"bytes"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// handlerGoroutines counts the goroutines running or waiting in
// h2server's handler loop; with state ("chan receive") only those
// blocked so: waiting for their connection's next stream.
func handlerGoroutines(state string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, "h2server.(*conn).handlerLoop") && strings.Contains(head, "["+state) {
			n++
		}
	}
	return n
}

// goroutineID is the calling goroutine's number, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := bytes.Cut(bytes.TrimPrefix(buf, []byte("goroutine ")), []byte(" "))
	return string(id)
}

// holdHandler answers /hold with its header and then waits for hold (or
// the stream's end), /panic by panicking, anything else by recording
// the goroutine it ran on in ids.
func holdHandler(hold chan struct{}, mu *sync.Mutex, ids map[string]int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-hold:
			case <-r.Context().Done():
			}
			return
		case "/panic":
			panic("boom")
		}
		mu.Lock()
		ids[goroutineID()]++
		mu.Unlock()
		io.WriteString(w, "ok")
	})
}

// A connection with a stream in progress keeps the goroutine of a
// handler that returned for its next stream, even one whose handler
// panicked; once nothing is in progress it keeps none.
func TestHandlerGoroutinesAreReused(t *testing.T) {
	hold := make(chan struct{})
	var mu sync.Mutex
	ids := map[string]int{}
	s := startServer(t, "gatehouse", defaultLimits, holdHandler(hold, &mu, ids))
	c, err := dial(s, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.headers(1, true, req("GET", "/hold"))
	if !c.waitHeaders(1) {
		t.Fatal(c.scriptError())
	}
	id := uint32(3)
	for i := range 12 {
		path := "/n"
		if i == 5 {
			path = "/panic"
		}
		c.headers(id, true, req("GET", path))
		if !c.waitStream(id) {
			t.Fatal(c.scriptError())
		}
		// The handler's goroutine waits for the next stream before the
		// next is sent: else a new one may be started, correctly.
		if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("chan receive") == 1 }) {
			t.Fatalf("after stream %d: %d handler goroutines waiting, want 1", id, handlerGoroutines("chan receive"))
		}
		id += 2
	}
	if tr := c.snapshot(); tr.status(13) != "" && tr.status(13) != "500" {
		t.Errorf("the panicking stream: status %q", tr.status(13))
	}
	mu.Lock()
	if len(ids) != 1 {
		t.Errorf("11 streams ran on %d goroutines (%v), want 1: none reused", len(ids), ids)
	}
	mu.Unlock()

	// Nothing in progress, the connection still open: no goroutine kept.
	close(hold)
	if !c.waitStream(1) {
		t.Fatal(c.scriptError())
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("") == 0 }) {
		t.Errorf("an idle connection keeps %d handler goroutines", handlerGoroutines(""))
	}
}

// A connection that ends ends the handler goroutines waiting on it.
func TestIdleHandlerGoroutinesEndWithTheConnection(t *testing.T) {
	hold := make(chan struct{}) // never closed: the stream ends with the connection
	var mu sync.Mutex
	s := startServer(t, "gatehouse", defaultLimits, holdHandler(hold, &mu, map[string]int{}))
	c, err := dial(s, false)
	if err != nil {
		t.Fatal(err)
	}
	c.headers(1, true, req("GET", "/hold"))
	c.headers(3, true, req("GET", "/n"))
	if !c.waitHeaders(1) || !c.waitStream(3) {
		t.Fatal(c.scriptError())
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("chan receive") == 1 }) {
		t.Fatalf("%d handler goroutines waiting, want 1", handlerGoroutines("chan receive"))
	}
	c.close()
	if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("") == 0 }) {
		t.Errorf("%d handler goroutines outlive their connection", handlerGoroutines(""))
	}
}
