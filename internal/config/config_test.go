package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestErrorsGolden loads every testdata/errors/*.yaml and compares the
// errors with the .golden file beside it. Regenerate with -update and
// review the diff.
func TestErrorsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.yaml")
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseFrom(filepath.Base(f), data, "testdata", Source{LookupEnv: goldenEnv})
			if err == nil {
				t.Fatal("config accepted; want errors")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// goldenEnv is the environment of the golden cases, whatever the
// process's.
func goldenEnv(name string) (string, bool) {
	v, ok := map[string]string{"GOLDEN_SET": "gatehouse", "GOLDEN_EMPTY": ""}[name]
	return v, ok
}

func TestShippedConfigIsValid(t *testing.T) {
	doc, err := Load("../../gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Config
	want := map[string]string{"oauth": "oauth-service", "admin": "admin-portal", "kline": "kline-service", "flow": "flow-service", "test": "test-service"}
	ports := map[string]string{"oauth-service": "3001", "admin-portal": "3002", "kline-service": "3003", "flow-service": "3004", "test-service": "3005"}
	for _, r := range c.Routes {
		if up, ok := want[r.Name]; ok {
			if r.Upstream != up || r.Match.PathPrefix != "/"+r.Name || r.StripPrefix {
				t.Errorf("route %s = %+v", r.Name, r)
			}
			if got := c.Upstreams[up].Targets; len(got) != 1 || got[0].Address != "127.0.0.1:"+ports[up] {
				t.Errorf("upstream %s targets = %v", up, got)
			}
			delete(want, r.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing routes %v", want)
	}
	if c.Server.Listen[0] != ":6188" {
		t.Errorf("listen = %v", c.Server.Listen)
	}
}

func TestDefaults(t *testing.T) {
	doc, err := Parse("t.yaml", []byte("upstreams: {a: {targets: [\"127.0.0.1:1\"]}}\nroutes: [{name: r, upstream: a}]\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Config
	if c.Server.MaxBodyBytes != DefaultMaxBodyBytes || c.Server.Listen[0] != DefaultListen ||
		c.Upstreams["a"].IdleConnTimeout.D() != DefaultIdleConnTimeout || c.Upstreams["a"].Host != "preserve" ||
		c.Log.Access != "stdout" || c.Server.SecurityHeaders["X-Content-Type-Options"] != "nosniff" {
		t.Errorf("defaults not applied: %+v %+v", c.Server, c.Upstreams["a"])
	}
	// An explicit 0 keeps "no limit" rather than becoming the default.
	doc, err = Parse("t.yaml", []byte("server: {max_body_bytes: 0}\nroutes: [{name: r, respond: {body: hi}}]\n"), ".")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Config.Server.MaxBodyBytes != 0 {
		t.Errorf("max_body_bytes = %d, want 0", doc.Config.Server.MaxBodyBytes)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Size
		bad  bool
	}{
		{in: "1024", want: 1024},
		{in: "64KiB", want: 64 << 10},
		{in: "10MB", want: 10_000_000},
		{in: "1GiB", want: 1 << 30},
		{in: "-1", bad: true},
		{in: "lots", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestAliasBombIsRefusedCheaply(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		bomb += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	// 10^8 values if expanded; the schema-driven decoder stops at the
	// first level where a list holds lists.
	_, err := Parse("bomb.yaml", []byte(bomb+"routes: *h\n"), ".")
	var es Errors
	if !errors.As(err, &es) || len(es) > 100 {
		t.Fatalf("got %d errors: %.300v", len(es), err)
	}
}

func TestErrorsAreFieldErrors(t *testing.T) {
	_, err := Parse("x.yaml", []byte("routes: [{name: r, upstream: nope}]\n"), ".")
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Path != "routes[0].upstream" || es[0].Pos.Line != 1 {
		t.Fatalf("err = %#v", err)
	}
}

// FuzzParse: no input makes the loader panic, and whatever it accepts is
// valid to compile (routes have exactly one action and known upstreams).
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.yaml")
	seeds = append(seeds, "../../gatehouse.yaml")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Add([]byte("routes: [{name: r, respond: {status: 204}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := Parse("f.yaml", data, "testdata")
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not Errors: %v", err)
			}
			return
		}
		for _, r := range doc.Config.Routes {
			if r.Upstream != "" {
				if _, ok := doc.Config.Upstreams[r.Upstream]; !ok {
					t.Fatalf("accepted unknown upstream %q", r.Upstream)
				}
			}
		}
	})
}

// Issue 14: auth.cache_size: 0 silently became 10000, so the cache could
// not be turned off, and the cache's TTL was fixed at 5 minutes.
func TestAuthCacheDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		auth     string
		wantSize int
		wantTTL  time.Duration
	}{
		{name: "unset", auth: "{}", wantSize: DefaultAuthCacheSize, wantTTL: DefaultAuthCacheTTL},
		{name: "cache off", auth: "{cache_size: 0}", wantSize: 0, wantTTL: DefaultAuthCacheTTL},
		{name: "set", auth: "{cache_size: 50, cache_ttl: 30s}", wantSize: 50, wantTTL: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, err := Parse("t.yaml", []byte("auth: "+tt.auth+"\nroutes: [{name: r, respond: {body: hi}}]\n"), ".")
			if err != nil {
				t.Fatal(err)
			}
			a := doc.Config.Auth
			if a.CacheSize != tt.wantSize || a.CacheTTL.D() != tt.wantTTL {
				t.Errorf("cache_size %d, cache_ttl %s; want %d, %s", a.CacheSize, a.CacheTTL.D(), tt.wantSize, tt.wantTTL)
			}
		})
	}
}

// Issue 14's class: an explicit 0 that meant "do not reuse an answer"
// silently became the default. For introspection answers it is kept.
func TestIntrospectionCacheZeroKept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		intro            string
		wantPos, wantNeg time.Duration
	}{
		{name: "unset", intro: "{client_id: g, client_secret: s}", wantPos: time.Minute, wantNeg: 10 * time.Second},
		{name: "zero", intro: "{client_id: g, client_secret: s, cache_ttl: 0s, negative_ttl: 0s}"},
		{name: "set", intro: "{client_id: g, client_secret: s, cache_ttl: 5s, negative_ttl: 1s}", wantPos: 5 * time.Second, wantNeg: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := "auth: { issuers: { main: { issuer: https://idp.example, audience: a, introspection: " + tt.intro +
				" } } }\nroutes: [{name: r, respond: {body: hi}}]\n"
			doc, err := Parse("t.yaml", []byte(src), ".")
			if err != nil {
				t.Fatal(err)
			}
			in := doc.Config.Auth.Issuers["main"].Introspection
			if in.CacheTTL.D() != tt.wantPos || in.NegativeTTL.D() != tt.wantNeg {
				t.Errorf("cache_ttl %s, negative_ttl %s; want %s, %s", in.CacheTTL.D(), in.NegativeTTL.D(), tt.wantPos, tt.wantNeg)
			}
		})
	}
}

// zeroMeans lists the numeric keys where an explicit 0 has a meaning of
// its own, kept as written. Every other numeric key is tagged `zero`:
// its absence means its default, and an explicit 0 is refused.
var zeroMeans = map[string]string{
	"HSTS.max_age":                  "withdraw HSTS (RFC 6797 §6.1.1)",
	"Server.max_connections":        "no cap",
	"Server.max_connections_per_ip": "no cap",
	"Server.max_body_bytes":         "no limit",
	"Tracing.sample_ratio":          "sample nothing",
	"Issuer.leeway":                 "no leeway",
	"Introspection.cache_ttl":       "never reuse an answer",
	"Introspection.negative_ttl":    "never reuse an answer",
	"Auth.cache_size":               "no cache",
	"Auth.cache_ttl":                "refused by Validate",
	"RateLimit.concurrency":         "no concurrency limit",
	"Passive.consecutive_failures":  "no passive ejection",
	"Passive.max_ejection_percent":  "never eject",
	"Health.min_healthy_share":      "always ready",
	"Retries.per_try_timeout":       "only response_header_timeout",
	"Retries.deadline":              "none beyond the route's timeout",
	"Retries.buffer_body":           "no body is buffered for a retry",
	"Discovery.port":                "refused by Validate for A records",
	"Upstream.slow_start":           "at once",
	"Route.timeout":                 "no overall limit",
	"Route.max_body_bytes":          "no limit",
}

// Issue 14's class, the whole of it: a numeric key whose absence means
// a default must not take an explicit 0 for that default. Every numeric
// key is either tagged `zero` (an explicit 0 refused, zeros.golden) or
// listed in zeroMeans with what its 0 means; a new key fails here until
// someone decides which.
func TestEveryNumericKeyDecidesWhatZeroMeans(t *testing.T) {
	t.Parallel()
	seen := map[reflect.Type]bool{}
	var walk func(tp reflect.Type)
	walk = func(tp reflect.Type) {
		for tp.Kind() == reflect.Pointer || tp.Kind() == reflect.Slice || tp.Kind() == reflect.Map {
			tp = tp.Elem()
		}
		if tp.Kind() != reflect.Struct || seen[tp] {
			return
		}
		seen[tp] = true
		for i := range tp.NumField() {
			f := tp.Field(i)
			key := f.Tag.Get("yaml")
			if key == "" {
				continue
			}
			base := f.Type
			for base.Kind() == reflect.Pointer {
				base = base.Elem()
			}
			switch base.Kind() {
			case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Float64:
				name := tp.Name() + "." + key
				_, tagged := f.Tag.Lookup("zero")
				_, listed := zeroMeans[name]
				switch {
				case tagged && listed:
					t.Errorf("%s: tagged zero and listed in zeroMeans; which is it?", name)
				case !tagged && !listed:
					t.Errorf("%s: an explicit 0 neither refused (tag zero) nor given a meaning (zeroMeans)", name)
				}
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
}

// An issuer's explicit leeway of 0 is no leeway, not the default 30s.
func TestIssuerLeewayZeroKept(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		leeway string
		want   time.Duration
	}{{"", 30 * time.Second}, {", leeway: 0s", 0}, {", leeway: 5s", 5 * time.Second}} {
		src := "auth: { issuers: { main: { issuer: https://idp.example, audience: a" + tt.leeway +
			" } } }\nroutes: [{name: r, respond: {body: hi}}]\n"
		doc, err := Parse("t.yaml", []byte(src), ".")
		if err != nil {
			t.Fatal(err)
		}
		if got := doc.Config.Auth.Issuers["main"].Leeway.D(); got != tt.want {
			t.Errorf("leeway %q: got %s, want %s", tt.leeway, got, tt.want)
		}
	}
}

// TestAdminAllowedHostsDefault: an admin listener on loopback answers
// only to loopback names unless told otherwise; one listening beyond
// loopback is reached by names only the operator knows, so any.
func TestAdminAllowedHostsDefault(t *testing.T) {
	t.Parallel()
	loopback := []string{"localhost", "127.0.0.1", "::1"}
	for _, tc := range []struct {
		admin string
		want  []string
	}{
		{"", loopback},
		{"admin: {listen: \"127.0.0.1:9000\"}", loopback},
		{"admin: {listen: \"127.0.0.5:9000\"}", append(loopback, "127.0.0.5")},
		{"admin: {listen: \"[::1]:9000\"}", loopback},
		{"admin: {listen: \"localhost:9000\"}", loopback},
		{"admin: {listen: \"0.0.0.0:9000\"}", nil},
		{"admin: {listen: \":9000\"}", nil},
		{"admin: {listen: \"10.1.2.3:9000\"}", nil},
		{"admin: {listen: \"127.0.0.1:9000\", allowed_hosts: [gatehouse-admin]}", []string{"gatehouse-admin"}},
		{"admin: {listen: \":9000\", allowed_hosts: [\"*\"]}", []string{"*"}},
	} {
		doc, err := Parse("t.yaml", []byte(tc.admin+"\nroutes: [{name: r, respond: {body: hi}}]\n"), ".")
		if err != nil {
			t.Fatal(err)
		}
		if got := doc.Config.Admin.AllowedHosts; !slices.Equal(got, tc.want) {
			t.Errorf("%s: allowed_hosts %q, want %q", tc.admin, got, tc.want)
		}
	}
}
