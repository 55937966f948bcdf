//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

type targetState struct {
	Address   string
	State     string
	Why       string
	Ejections int64
}

func upstreamStates(t *testing.T, admin, name string) map[string]targetState {
	t.Helper()
	resp, err := http.Get(admin + "/upstreams")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Upstreams []struct {
			Name    string
			Targets []targetState
		}
	}
	json.NewDecoder(resp.Body).Decode(&body)
	out := map[string]targetState{}
	for _, u := range body.Upstreams {
		if u.Name == name {
			for _, tg := range u.Targets {
				out[tg.Address] = tg
			}
		}
	}
	return out
}

// poolGate starts gatehouse over the given targets with an admin listener;
// upstreamYAML is spliced into the upstream's mapping.
func poolGate(t *testing.T, targets []string, upstreamYAML string) (p *testutil.Proc, base, admin, cfgPath string, write func(extra string)) {
	t.Helper()
	addr, adminAddr := testutil.FreePort(t), testutil.FreePort(t)
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	mk := func(extra string) string {
		return fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: %q }
upstreams:
  app:
    targets: [%s]
%s
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
%s`, addr, adminAddr, strings.Join(quoted, ", "), upstreamYAML, extra)
	}
	cfgPath = filepath.Join(t.TempDir(), "gatehouse.yaml")
	write = func(extra string) { writeAtomic(t, cfgPath, mk(extra)) }
	write("")
	p = testutil.StartFile(t, cfgPath, addr)
	if err := testutil.WaitListening(adminAddr, 5*time.Second, p.Done()); err != nil {
		t.Fatal(err)
	}
	return p, "http://" + addr, "http://" + adminAddr, cfgPath, write
}

// load sends GETs from 4 workers until stop is closed, counting results.
type load struct {
	ok, failed atomic.Int64
	lastErr    atomic.Value
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(base string) *load {
	l := &load{stop: make(chan struct{})}
	for w := 0; w < 4; w++ {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 1_000_000; i++ { // bounded; stop ends it
				select {
				case <-l.stop:
					return
				default:
				}
				resp, err := c.Get(base + "/load")
				if err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.failed.Add(1)
					l.lastErr.Store(resp.Status)
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

func TestKillAndRestartTargetUnderLoad(t *testing.T) {
	ups := []*upstream{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	targets := []string{ups[0].Addr, ups[1].Addr, ups[2].Addr}
	p, base, admin, _, _ := poolGate(t, targets, `
    health:
      active: { type: tcp, interval: 200ms, timeout: 100ms, rise: 2, fall: 2 }
    slow_start: 2s`)
	l := startLoad(base)
	defer l.end()
	testutil.WaitFor(5*time.Second, func() bool { return l.ok.Load() > 200 })

	victim := ups[1].Addr
	killed := time.Now()
	ups[1].kill()
	if !testutil.WaitFor(5*time.Second, func() bool { return upstreamStates(t, admin, "app")[victim].State == "down" }) {
		t.Fatalf("killed target not marked down: %+v", upstreamStates(t, admin, "app"))
	}
	t.Logf("marked down %v after the kill (interval 200ms ±10%% × fall 2, first check within interval/4)", time.Since(killed))
	if d := time.Since(killed); d > 2*time.Second {
		t.Errorf("took %v to take the target out", d)
	}
	// Once down, it gets no traffic: no request needs a second attempt.
	mark := len(p.Output())
	before := l.ok.Load()
	testutil.WaitFor(5*time.Second, func() bool { return l.ok.Load() > before+300 })
	if strings.Contains(p.Output()[mark:], `"upstream":"`+victim+`"`) {
		t.Error("the down target still got requests")
	}

	// Restart it on the same address: back after rise × interval.
	ups[1] = startUpstreamAt(t, "b", victim)
	back := time.Now()
	if !testutil.WaitFor(5*time.Second, func() bool { return upstreamStates(t, admin, "app")[victim].State == "up" }) {
		t.Fatalf("restarted target not back: %+v", upstreamStates(t, admin, "app"))
	}
	t.Logf("back up %v after the restart", time.Since(back))
	if !p.WaitLog(`"upstream":"`+victim+`","status":200`, 5*time.Second) {
		t.Error("the recovered target got no traffic")
	}
	l.end()
	l.stop = make(chan struct{}) // end() again in defer is harmless
	t.Logf("%d requests ok, %d failed", l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Fatalf("%d idempotent requests failed (last: %v)", n, l.lastErr.Load())
	}
}

func TestAllTargetsDown(t *testing.T) {
	dead1, dead2 := testutil.FreePort(t), testutil.FreePort(t)
	_, base, _, _, _ := poolGate(t, []string{dead1, dead2}, `
    health:
      active: { type: tcp, interval: 100ms, timeout: 50ms, rise: 1, fall: 1 }`)
	var resp *http.Response
	ok := testutil.WaitFor(5*time.Second, func() bool {
		r, err := http.Get(base + "/x")
		if err != nil {
			return false
		}
		r.Body.Close()
		resp = r
		return r.StatusCode == 503
	})
	if !ok {
		t.Fatalf("never 503 with every target down (last %v)", resp.Status)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestHTTPCheckSeesWhatTCPCheckCannot(t *testing.T) {
	sick := startUpstream(t, "sick") // accepts connections, answers 500 on the health path
	for _, tt := range []struct {
		check, want string
	}{
		{`{ type: http, path: "/healthz?do=status&code=500", interval: 100ms, timeout: 80ms, rise: 1, fall: 2 }`, "down"},
		{`{ type: tcp, interval: 100ms, timeout: 80ms, rise: 1, fall: 2 }`, "up"},
	} {
		_, _, admin, _, _ := poolGate(t, []string{sick.Addr}, "\n    health:\n      active: "+tt.check)
		if !testutil.WaitFor(5*time.Second, func() bool { return upstreamStates(t, admin, "app")[sick.Addr].State == tt.want }) {
			t.Errorf("%s: state %+v, want %s", tt.check, upstreamStates(t, admin, "app")[sick.Addr], tt.want)
		}
	}
}

func TestRetries(t *testing.T) {
	stuck := startUpstreamAt(t, "stuck", testutil.FreePort(t), "UPSTREAM_MODE=hang")
	good := startUpstream(t, "good")
	const pol = `
    retries: { attempts: 3, per_try_timeout: 300ms, buffer_body: 1KiB }
    health: { passive: { consecutive_failures: 0 } }`
	// Each case gets a fresh gatehouse, so round robin starts at the first
	// target listed.
	tests := []struct {
		name         string
		targets      []string
		method       string
		body         []byte
		want         int
		wantAttempts int
		deadline     string // retries.deadline, if set
	}{
		{"GET survives a refused connection and a hang", []string{"dead", "stuck", "good"}, "GET", nil, 200, 3, ""},
		{"small POST retried after a refused connection", []string{"dead", "good"}, "POST", []byte("small"), 200, 2, ""},
		{"POST not retried after a timeout", []string{"stuck", "good"}, "POST", []byte("small"), 504, 1, ""},
		{"POST too big to keep is never retried", []string{"dead", "good"}, "POST", bytes.Repeat([]byte("x"), 10<<10), 502, 1, ""},
		// The deadline runs from the first attempt's start: a 300ms
		// timeout is past a 200ms deadline, within a 2s one.
		{"no retry past the deadline", []string{"stuck", "good"}, "GET", nil, 504, 1, "200ms"},
		{"a retry within the deadline", []string{"stuck", "good"}, "GET", nil, 200, 2, "2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var targets []string
			for _, n := range tt.targets {
				switch n {
				case "dead":
					targets = append(targets, testutil.FreePort(t))
				case "stuck":
					targets = append(targets, stuck.Addr)
				case "good":
					targets = append(targets, good.Addr)
				}
			}
			policy := pol
			if tt.deadline != "" {
				policy = strings.Replace(pol, "buffer_body: 1KiB", "buffer_body: 1KiB, deadline: "+tt.deadline, 1)
			}
			p, base, _, _, _ := poolGate(t, targets, policy)
			req, _ := http.NewRequest(tt.method, base+"/r", bytes.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if !p.WaitLog(fmt.Sprintf(`"attempts":%d,`, tt.wantAttempts), 5*time.Second) {
				t.Errorf("want %d attempts:\n%s", tt.wantAttempts, p.Output())
			}
		})
	}
}

func TestHealthSurvivesReload(t *testing.T) {
	good := startUpstream(t, "good")
	dead := testutil.FreePort(t)
	p, _, admin, _, write := poolGate(t, []string{good.Addr, dead}, `
    health:
      active: { type: tcp, interval: 1s, timeout: 100ms, rise: 1, fall: 1 }`)
	if !testutil.WaitFor(5*time.Second, func() bool { return upstreamStates(t, admin, "app")[dead].State == "down" }) {
		t.Fatal("dead target never marked down")
	}
	write("  - { name: extra, match: { path: /extra }, respond: { body: hi } }\n")
	if !p.WaitLog(`"generation":2`, 5*time.Second) {
		t.Fatal("no reload")
	}
	// Straight after the reload, before any new check: still down.
	if st := upstreamStates(t, admin, "app")[dead]; st.State != "down" {
		t.Fatalf("after reload: %+v", st)
	}
	_ = os.Getenv
}

func TestConsistentHashStickiness(t *testing.T) {
	ups := []*upstream{startUpstream(t, "a"), startUpstream(t, "b"), startUpstream(t, "c")}
	_, base, _, _, _ := poolGate(t, []string{ups[0].Addr, ups[1].Addr, ups[2].Addr}, `
    balancer: consistent_hash
    hash_key: "header:X-User"`)
	used := map[string]bool{}
	for u := 0; u < 30; u++ {
		var first string
		for i := 0; i < 4; i++ {
			req, _ := http.NewRequest("GET", base+"/x", nil)
			req.Header.Set("X-User", fmt.Sprintf("user-%d", u))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e echo
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if first == "" {
				first = e.Upstream
			} else if e.Upstream != first {
				t.Fatalf("user-%d went to %s, then %s", u, first, e.Upstream)
			}
			used[e.Upstream] = true
		}
	}
	if len(used) < 2 {
		t.Errorf("30 users all hashed to %v", used)
	}
}

func TestDNSDiscoveryFollowsRecords(t *testing.T) {
	dns := testutil.StartDNS(t)
	a, b := startUpstream(t, "a"), startUpstream(t, "b")
	port := func(u *upstream) uint16 {
		var p uint16
		fmt.Sscanf(u.Addr[strings.LastIndexByte(u.Addr, ':')+1:], "%d", &p)
		return p
	}
	dns.SetIPs("host.test", "127.0.0.1")
	dns.SetSRV("_app._tcp.svc.test", testutil.SRV{Target: "host.test", Port: port(a), Weight: 1, Priority: 1})
	addr, adminAddr := testutil.FreePort(t), testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: %q }
upstreams:
  app:
    discovery: { name: _app._tcp.svc.test, type: SRV, interval: 200ms, resolver: %q }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, adminAddr, dns.Addr), addr)
	seen := func() map[string]bool {
		out := map[string]bool{}
		for i := 0; i < 12; i++ {
			resp, err := http.Get("http://" + addr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			var e echo
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			out[e.Upstream] = true
		}
		return out
	}
	want := func(names ...string) func() bool {
		return func() bool {
			s := seen()
			if len(s) != len(names) {
				return false
			}
			for _, n := range names {
				if !s[n] {
					return false
				}
			}
			return true
		}
	}
	if !testutil.WaitFor(5*time.Second, want("a")) {
		t.Fatalf("first lookup: %v", seen())
	}
	dns.SetSRV("_app._tcp.svc.test",
		testutil.SRV{Target: "host.test", Port: port(a), Weight: 1, Priority: 1},
		testutil.SRV{Target: "host.test", Port: port(b), Weight: 1, Priority: 1})
	if !testutil.WaitFor(5*time.Second, want("a", "b")) {
		t.Fatalf("added target not used: %v", seen())
	}
	dns.SetSRV("_app._tcp.svc.test", testutil.SRV{Target: "host.test", Port: port(b), Weight: 1, Priority: 1})
	if !testutil.WaitFor(5*time.Second, want("b")) {
		t.Fatalf("removed target still used: %v", seen())
	}
	if st := upstreamStates(t, "http://"+adminAddr, "app"); len(st) != 1 || st[b.Addr].Address != b.Addr {
		t.Fatalf("/upstreams: %+v", st)
	}
}
