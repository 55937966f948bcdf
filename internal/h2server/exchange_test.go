package h2server_test

// The runner of scripted exchanges, which the differential tests and the
// attack tests that are a script share.

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gatehouse/internal/testutil"
)

// exchange is one scripted case.
type exchange struct {
	name    string
	lim     *limits     // nil: defaultLimits
	handler handlerFunc // nil: answer "ok"
	noRead  bool        // the handler does not read the body first
	script  func(c *client, e *env)
	check   func(t *testing.T, tr transcript) // for both servers, if set

	// netHTTPWrong, when set, says why net/http's answer is wrong at a
	// security boundary. want is then the expected answer, written out:
	// the gatehouse subtest requires it, the nethttp one logs how
	// net/http fails it (and fails if net/http stops failing it, so that
	// the case goes back to a plain differential one). normalize removes
	// from both transcripts what want judges, and the rest is diffed.
	netHTTPWrong string
	want         func(tr transcript) error
	normalize    func(tr *transcript)

	// noDiff, when set, says why the two transcripts may differ (window
	// sizes are each server's choice, say): only check applies.
	noDiff string
}

// run runs x against a fresh server of kind and returns the transcript.
// With attack, it then also checks that the server answers a fresh
// connection and that its goroutines are back to what they were before
// the client connected; what fails is returned as problems.
func run(kind string, x exchange, attack bool) (tr transcript, problems []string, err error) {
	e := newEnv()
	lim := defaultLimits
	if x.lim != nil {
		lim = *x.lim
	}
	srv, err := newServer(kind, lim, e.handler(x.handler, x.noRead))
	if err != nil {
		return transcript{}, nil, err
	}
	defer srv.close()
	e.log = srv.log
	defer e.releaseAll()
	base := runtime.NumGoroutine()
	c, err := dial(srv, false)
	if err != nil {
		return transcript{}, nil, err
	}
	defer c.close()
	x.script(c, e)
	c.finish()
	e.releaseAll()
	testutil.WaitFor(waitTimeout, func() bool { return e.inflight.Load() == 0 })
	tr = c.snapshot()
	tr.Saw = e.snapshotViews()
	tr.HandlersLeft = e.inflight.Load()
	e.mu.Lock()
	tr.Wrote = e.wrote
	e.mu.Unlock()
	tr.PanicLogged = strings.Contains(srv.log.String(), "panic")
	if attack {
		c.close()
		if err := health(srv); err != nil {
			problems = append(problems, err.Error())
		}
		if err := goroutinesBackTo(base); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return tr, problems, nil
}

// health GETs healthPath on a fresh connection to srv.
func health(srv *testServer) error {
	c, err := dial(srv, false)
	if err != nil {
		return fmt.Errorf("health check: %v", err)
	}
	defer c.close()
	c.headers(1, true, req("GET", healthPath))
	c.waitStream(1)
	tr := c.snapshot()
	if tr.status(1) != "200" || tr.Streams[1].Body != "ok" {
		return fmt.Errorf("health check on a fresh connection: %v", tr)
	}
	return nil
}

// goroutinesBackTo waits for the process's goroutines to be no more than
// base. Only for tests that do not run in parallel.
func goroutinesBackTo(base int) error {
	if testutil.WaitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= base }) {
		return nil
	}
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return fmt.Errorf("goroutine leak: %d before, %d after\n%s", base, runtime.NumGoroutine(), buf[:n])
}

var transcriptOpts = cmp.Options{
	cmpopts.IgnoreUnexported(streamT{}),
	cmpopts.IgnoreFields(transcript{}, "ScriptErr"),
	cmpopts.EquateEmpty(),
}

// runExchanges runs each case as <server>/<case>, in parallel unless
// attack (see run).
func runExchanges(t *testing.T, attack bool, cases []exchange) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			for _, x := range cases {
				t.Run(x.name, func(t *testing.T) {
					if !attack {
						t.Parallel()
					}
					runExchange(t, kind, x, attack)
				})
			}
		})
	}
}

func runExchange(t *testing.T, kind string, x exchange, attack bool) {
	want, problems, err := run("nethttp", x, attack && kind == "nethttp")
	if err != nil {
		t.Fatalf("nethttp: %v", err)
	}
	if kind == "nethttp" {
		// The script must be right against the reference.
		if want.ScriptErr != "" || want.ReadErr != "" || want.HandlersLeft != 0 {
			t.Errorf("against nethttp: %v; handlers left %d", want, want.HandlersLeft)
		}
		for _, p := range problems {
			t.Error(p)
		}
		if x.check != nil {
			x.check(t, want)
		}
		if x.netHTTPWrong != "" {
			if err := x.want(want); err == nil {
				t.Errorf("net/http now gets this right (%s): make it a plain differential case", x.netHTTPWrong)
			} else {
				t.Logf("known net/http deviation (%s): %v", x.netHTTPWrong, err)
			}
		}
		if os.Getenv("H2TEST_DUMP") != "" {
			b, _ := json.Marshal(want)
			t.Logf("DUMP %s %s", t.Name(), b)
		}
		return
	}
	got, problems, err := run(kind, x, attack)
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if x.check != nil {
		x.check(t, got)
	}
	if x.want != nil { // before normalize, which removes what want judges
		if err := x.want(got); err != nil {
			t.Error(err)
		}
	}
	// The last stream ID of a GOAWAY that reports an error is not
	// compared (its code is): net/http gives the ID of the frame at
	// fault even when that stream was never opened (GOAWAY 2 for HEADERS
	// on stream 2, GOAWAY 3 for DATA on idle stream 3), which a server
	// need not copy. A graceful GOAWAY's is compared.
	for _, tr := range []*transcript{&want, &got} {
		if tr.GoAway != "" && tr.GoAway != "NO_ERROR" {
			tr.GoAwayLast = 0
		}
	}
	if x.normalize != nil {
		x.normalize(&want)
		x.normalize(&got)
	}
	if x.noDiff == "" {
		if d := cmp.Diff(want, got, transcriptOpts); d != "" {
			t.Errorf("transcripts differ (-nethttp +%s):\n%s\n%s: %v", kind, d, kind, got)
		}
	} else if got.ScriptErr != "" {
		t.Errorf("%s: %s", kind, got.ScriptErr)
	}
	if got.HandlersLeft != 0 {
		t.Errorf("%d handlers still running", got.HandlersLeft)
	}
}
