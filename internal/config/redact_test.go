package config

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestRedactSecretFields(t *testing.T) {
	t.Parallel()
	type client struct {
		ID     string `yaml:"id"`
		Secret string `yaml:"secret" secret:"true"`
	}
	type cfg struct {
		Name    string             `yaml:"name"`
		Clients map[string]*client `yaml:"clients"`
		List    []client           `yaml:"list"`
		Empty   client             `yaml:"empty"`
	}
	c := cfg{Name: "x", Clients: map[string]*client{"a": {ID: "a", Secret: "s3cret-1"}},
		List: []client{{ID: "b", Secret: "s3cret-2"}}}
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		t.Fatal(err)
	}
	redactor{}.redact(&n, reflect.TypeOf(c), "")
	out, _ := yaml.Marshal(&n)
	if strings.Contains(string(out), "s3cret") || strings.Count(string(out), Redacted) != 2 {
		t.Fatalf("redacted output:\n%s", out)
	}
	if !strings.Contains(string(out), "id: a") {
		t.Fatalf("non-secret fields lost:\n%s", out)
	}
}

func TestMarshalRedactedConfig(t *testing.T) {
	doc, err := Load("../../gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalRedacted(doc.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"read_header_timeout: 10s", "admin-portal:", "path_prefix: /admin", "listen: 127.0.0.1:9901"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

// redacted is what /config shows of the config text yaml.
func redacted(t *testing.T, yaml string) string {
	t.Helper()
	doc, err := Parse("t.yaml", []byte(yaml), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalRedacted(doc.Config)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestMarshalRedactedLoginSecrets(t *testing.T) {
	t.Parallel()
	out := redacted(t, `
auth:
  issuers: { main: { issuer: https://auth.example.com, audience: gw } }
  login:
    client_id: gatehouse
    client_secret: client-s3cret-value
    redirect_url: https://gw.example.com/_gatehouse/callback
    cookie_secret: cookie-s3cret-value-0123456789abcdef
routes:
  - { name: r, match: { path_prefix: / }, respond: { status: 204 } }
`)
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "client_id: gatehouse") {
		t.Fatalf("redacted config:\n%s", out)
	}
}

// A URL's password is secret whichever field holds it: /config and the
// validation messages that echo a refused value show it as xxxxx.
func TestURLPasswordsNeverShown(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://user:pw-s3cret@otel.example.com:4318": "https://user:xxxxx@otel.example.com:4318",
		"http://:pw-s3cret@127.0.0.1:4318/x?q=1":       "http://:xxxxx@127.0.0.1:4318/x?q=1",
		// A name alone may be a token (a Sentry DSN, a token as user).
		"https://glpat-s3cret@otel.example.com":  "https://xxxxx@otel.example.com",
		"https://${OTEL_TOKEN}@otel.example.com": "https://${OTEL_TOKEN}@otel.example.com",
		"https://h/users/@me":                    "https://h/users/@me",
		// ... also where the URL does not parse (found on review).
		"https://glpat-s3cret@otel.example.com:43x18": "https://xxxxx@otel.example.com:43x18",
		"https://glpat-s3cret@otel example.com":       "https://xxxxx@otel example.com",
		"https://glpat-s3cret@otel.example.com/%zz":   "https://xxxxx@otel.example.com/%zz",
		"https://h/us ers/@me":                        "https://h/us ers/@me",
		// ... with an "@" in the path too, or scheme-relative; prose is
		// left alone (found on a second review).
		"https://glpat-s3cret@otel.example.com:43x18/v1/@me":    "https://xxxxx@otel.example.com:xxxxx@me", // garbled, safe
		"https://glpat-s3cret@otel example.com/users/@me":       "https://xxxxx@otel example.com/users/@me",
		"//glpat-s3cret@otel.example.com:43x18":                 "//xxxxx@otel.example.com:43x18",
		"see https://example.com or write to admin@example.com": "see https://example.com or write to admin@example.com",
		// A user that is an address, and a password a URL cannot hold;
		// a second "@" after a backslash; an IPv6 literal (found on a
		// third review).
		"smtp://alerts@example.com:kX9/x==@smtp.example.com:587": "smtp://xxxxx@example.com:xxxxx@smtp.example.com:587",
		"smtp://alerts@example.com:pa#ss@smtp.example.com:587":   "smtp://xxxxx@example.com:xxxxx@smtp.example.com:587",
		"https://glpat-s3cret@otel.example.com:43x18\\v1@me":     "https://xxxxx@otel.example.com:xxxxx@me",
		"https://[::1]/users/@me":                                "https://[::1]/users/@me",
		"Moved to https://new.example.com\nops@example.com":      "Moved to https://new.example.com\nops@example.com",
		"mail@example.com": "mail@example.com",
		"no url at all":    "no url at all",
		// Passwords url.Parse cannot read as passwords (a "/", "#", "?",
		// a space, a stray "%"), and a target written with credentials.
		"https://otel:kX9/s3cretb64+Zq==@otel.example:4318": "https://otel:xxxxx@otel.example:4318",
		"http://otel:S3cr%t-PW@127.0.0.1:14318":             "http://otel:xxxxx@127.0.0.1:14318",
		"redis://:s3cret#x@h:1":                             "redis://:xxxxx@h:1",
		"https://u:pass word@h":                             "https://u:xxxxx@h",
		"user:s3cret@h":                                     "user:xxxxx@h",
		// Digits and a "/" after the ":" may be a port, or a password:
		// masked either way.
		"u:12/s3cret@h:1": "u:xxxxx@h:1",
		"https://otel:2024/kX9s3cret==@otel.example:4318": "https://otel:xxxxx@otel.example:4318",
		"https://h:8080/users/@me":                        "https://h:xxxxx@me",
		// A reference shows as written; a default in one is a literal.
		"https://u:${OTEL_PASSWORD}@h": "https://u:${OTEL_PASSWORD}@h",
		"https://u:${A:-s3cret/x}@h":   "https://u:xxxxx@h",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}

	// A validation message echoes a refused URL: masked there too.
	if _, err := Parse("r.yaml", []byte("tracing: { endpoint: \"https://glpat-s3cret@otel.example.com:43x18\" }\nroutes: [{name: r, respond: {status: 204}}]\n"), "."); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("validation message shows the token: %v", err)
	}

	out := redacted(t, `
tracing: { endpoint: "https://otel:pw-s3cret@collector.example.com:4318" }
routes:
  - { name: r, match: { path_prefix: / }, respond: { status: 204 } }
`)
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "https://otel:xxxxx@collector.example.com:4318") {
		t.Fatalf("/config shows:\n%s", out)
	}

	_, err := Parse("t.yaml", []byte(`
tracing: { endpoint: "ftp://otel:pw-s3cret@collector.example.com" }
auth:
  issuers:
    main:
      issuer: "https://u:pw-s3cret@auth.example.com?x"
      audience: gw
      jwks_uri: "ftp://u:pw-s3cret@auth.example.com/jwks"
upstreams:
  app: { targets: ["http://u:pw-s3cret@127.0.0.1:3002", "u:pw-s3cret@h", "u:pw/s3cret@h:1"] }
routes:
  - { name: r, match: { path_prefix: / }, upstream: app }
`), t.TempDir())
	if err == nil {
		t.Fatal("bad URLs accepted")
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Count(msg, "xxxxx") < 6 {
		t.Fatalf("validation errors:\n%s", msg)
	}

	// An issuer's URLs may hold no credentials at all: they are logged
	// and shown on the status pages whenever the issuer is unreachable.
	_, err = Parse("t.yaml", []byte(`
auth:
  issuers:
    main:
      issuer: "https://u:pw-s3cret@auth.example.com"
      audience: gw
      jwks_uri: "https://u:pw-s3cret@auth.example.com/jwks"
      introspection: { endpoint: "https://u:pw-s3cret@auth.example.com/i", client_id: gw, client_secret: x }
routes:
  - { name: r, match: { path_prefix: / }, respond: { status: 204 } }
`), t.TempDir())
	if err == nil || strings.Count(err.Error(), "must not hold credentials") != 3 || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("credentials in an issuer's URLs: %v", err)
	}
}

// A credential written as a literal into a header edit or a header match
// is as secret as a client_secret: /config shows it as [redacted]. Other
// values, and references, show as written.
func TestCredentialHeaderLiteralsRedacted(t *testing.T) {
	t.Setenv("PARTNER_TOKEN", "env-s3cret")
	out := redacted(t, `
upstreams: { app: { targets: ["127.0.0.1:3002"] } }
routes:
  - name: r
    match: { path_prefix: /, headers: { X-Api-Key: s3cret-match, X-Env: staging, X-Session-Id: "*" } }
    upstream: app
    request_headers:
      set: { Authorization: "Basic s3cret-basic", X-Upstream-Token: "${PARTNER_TOKEN}", X-Tenant: kline }
      add: { Cookie: "sid=s3cret-cookie" }
`)
	if strings.Contains(out, "s3cret") {
		t.Fatalf("/config shows a credential:\n%s", out)
	}
	for _, want := range []string{"X-Env: staging", "X-Tenant: kline", "X-Upstream-Token: ${PARTNER_TOKEN}", `X-Session-Id: '*'`, "Authorization: '[redacted]'"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}
