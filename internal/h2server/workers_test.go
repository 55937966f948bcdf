package h2server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/testutil"

	"golang.org/x/net/http2"
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

// A handler's goroutine runs the connection's next streams, even after
// a handler that panicked, both while another stream is in progress and
// across moments with nothing in progress; a connection that has had
// nothing in progress for HandlerLinger keeps none.
func TestHandlerGoroutinesAreReused(t *testing.T) {
	for _, held := range []bool{true, false} {
		t.Run(fmt.Sprintf("held=%v", held), func(t *testing.T) {
			hold := make(chan struct{})
			var mu sync.Mutex
			ids := map[string]int{}
			lim := defaultLimits
			lim.HandlerLinger = time.Hour // let go below by the connection's end
			if held {
				lim.HandlerLinger = 50 * time.Millisecond // but stream 1 is in progress
			}
			s := startServer(t, "gatehouse", lim, holdHandler(hold, &mu, ids))
			c, err := dial(s, false)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			want := 1 // goroutines waiting after each stream
			if held {
				c.headers(1, true, req("GET", "/hold"))
				if !c.waitHeaders(1) {
					t.Fatal(c.scriptError())
				}
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
				// The goroutine waits for the next stream before the next
				// is sent: else a new one may be started, correctly.
				if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("chan receive") == want }) {
					t.Fatalf("after stream %d: %d handler goroutines waiting, want %d", id, handlerGoroutines("chan receive"), want)
				}
				id += 2
			}
			if st := c.snapshot().status(13); st != "" && st != "500" {
				t.Errorf("the panicking stream: status %q", st)
			}
			mu.Lock()
			if len(ids) != 1 {
				t.Errorf("11 streams ran on %d goroutines (%v), want 1: none reused", len(ids), ids)
			}
			mu.Unlock()
			if held {
				// Nothing in progress, the connection still open: the
				// goroutines end after HandlerLinger.
				close(hold)
				if !c.waitStream(1) {
					t.Fatal(c.scriptError())
				}
				if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("") == 0 }) {
					t.Errorf("a connection idle for longer than HandlerLinger keeps %d handler goroutines", handlerGoroutines(""))
				}
			}
		})
	}
}

// A connection that ends ends the handler goroutines waiting on it.
func TestIdleHandlerGoroutinesEndWithTheConnection(t *testing.T) {
	hold := make(chan struct{}) // never closed: the stream ends with the connection
	var mu sync.Mutex
	lim := defaultLimits
	lim.HandlerLinger = time.Hour
	s := startServer(t, "gatehouse", lim, holdHandler(hold, &mu, map[string]int{}))
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

// A write deadline set from another goroutine while the handler waits
// for flow-control window (the client gave none) ends the wait: the
// stream is reset and the write fails, as under net/http. The server
// wakes a waiting handler for a new deadline, and only then.
func TestWriteDeadlineSetWhileTheHandlerWaits(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			waiting := make(chan struct{})
			result := make(chan error, 1)
			s := startServer(t, kind, defaultLimits, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				go func() {
					<-waiting
					rc.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
				}()
				w.Write([]byte("x"))
				close(waiting) // the flush below waits for window that never comes
				result <- rc.Flush()
			}))
			c, err := dial(s, false, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			c.headers(1, true, req("GET", "/"))
			select {
			case err := <-result:
				if err == nil {
					t.Error("the flush succeeded without window")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the handler still waits past its write deadline")
			}
			if !c.waitStream(1) {
				t.Fatal(c.scriptError())
			}
			if st := c.snapshot().Streams[1]; st == nil || st.RST != "INTERNAL_ERROR" {
				t.Errorf("stream 1: %+v, want RST_STREAM INTERNAL_ERROR", st)
			}
		})
	}
}

// The idle goroutines go after HandlerLinger even when the last handler's
// goroutine does not join them (the list is full): a regression found in
// review, where they stayed until the connection ended.
func TestIdleHandlerGoroutinesGoWhenTheListIsFull(t *testing.T) {
	holds := make([]chan struct{}, 17)
	for i := range holds {
		holds[i] = make(chan struct{})
	}
	lim := defaultLimits
	lim.HandlerLinger = 20 * time.Millisecond
	lim.IdleTimeout = time.Hour
	s := startServer(t, "gatehouse", lim, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Path, "/h%d", &i)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-holds[i]:
		case <-r.Context().Done():
		}
	}))
	c, err := dial(s, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := range 17 {
		id := uint32(2*i + 1)
		c.headers(id, true, req("GET", fmt.Sprintf("/h%d", i)))
		if !c.waitHeaders(id) {
			t.Fatal(c.scriptError())
		}
	}
	for i := range 16 { // 16 return while the 17th is in progress
		close(holds[i])
		if !c.waitStream(uint32(2*i + 1)) {
			t.Fatal(c.scriptError())
		}
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("chan receive") == 16 }) {
		t.Fatalf("%d handler goroutines waiting, want 16", handlerGoroutines("chan receive"))
	}
	close(holds[16]) // its goroutine finds the list full, and ends
	if !c.waitStream(33) {
		t.Fatal(c.scriptError())
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return handlerGoroutines("") == 0 }) {
		t.Errorf("a connection idle for longer than HandlerLinger keeps %d handler goroutines", handlerGoroutines(""))
	}
}
