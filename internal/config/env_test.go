package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"A": "alpha", "EMPTY": "", "B_2": "$x${A}"})
	tests := []struct {
		name     string
		in       string
		want     string
		problems []string
		bad      bool
	}{
		{name: "no reference", in: "plain $5 $$ $A {A}", want: "plain $5 $$ $A {A}"},
		{name: "reference", in: "x-${A}-y", want: "x-alpha-y"},
		{name: "whole value", in: "${B_2}", want: "$x${A}"}, // values are not expanded again
		{name: "default unused", in: "${A:-d}", want: "alpha"},
		{name: "default for unset", in: "${NOPE:-d e}", want: "d e"},
		{name: "default for empty", in: "${EMPTY:-d}", want: "d"},
		{name: "empty default", in: "a${NOPE:-}b", want: "ab"},
		{name: "escape", in: "$${A} and $${", want: "${A} and ${"},
		{name: "unset", in: "${NOPE}/${NOPE}/${ALSO}", want: "//", problems: []string{
			"environment variable NOPE is not set", "environment variable ALSO is not set"}},
		{name: "empty", in: "${EMPTY}", want: "", problems: []string{
			"environment variable EMPTY is empty (write ${EMPTY:-} to allow that)"}},
		{name: "unclosed", in: "ab${A", bad: true},
		{name: "not a name", in: "${from your secret store}", bad: true},
		{name: "digit first", in: "${1A}", bad: true},
		{name: "empty name", in: "${}", bad: true},
		{name: "nested", in: "${A:-${B}}", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, problems, err := expand(tt.in, env)
			if (err != nil) != tt.bad {
				t.Fatalf("err = %v, want error %v", err, tt.bad)
			}
			if tt.bad {
				if strings.Contains(err.Error(), tt.in) {
					t.Errorf("error quotes the value: %v", err)
				}
				return
			}
			if got != tt.want || !slices.Equal(problems, tt.problems) {
				t.Errorf("expand(%q) = %q, %q; want %q, %q", tt.in, got, problems, tt.want, tt.problems)
			}
		})
	}
}

const secretsConfig = `
server:
  listen: ["127.0.0.1:${PORT:-6188}"]
tracing:
  endpoint: https://otel:${OTEL_PASSWORD}@collector.example.com
  headers: { Authorization: "Bearer ${OTEL_TOKEN}" }
auth:
  issuers:
    main:
      issuer: https://auth.example.com
      audience: gw
      introspection: { client_id: gatehouse, client_secret_file: secrets/introspection }
  login:
    client_id: ${CLIENT_ID}
    client_secret: ${CLIENT_SECRET}
    redirect_url: https://gw.example.com/_gatehouse/callback
    cookie_secret_file: ${CREDENTIALS_DIRECTORY}/cookie
redis:
  url: redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0
  password_file: secrets/redis
upstreams:
  app: { targets: ["${APP_HOST}:3000"] }
routes:
  - name: app
    match: { path_prefix: / }
    upstream: app
    request_headers: { set: { X-Api-Key: "${API_KEY}", X-Price: "$5 $$ $${NOT_A_VAR}" } }
`

// secretsEnv writes the secret files secretsConfig names under a temp dir
// and returns the dir and the environment.
func secretsEnv(t *testing.T) (string, map[string]string) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"secrets/introspection": "introspection-s3cret\n",
		"creds/cookie":          "cookie-s3cret-0123456789abcdef-0123456789\r\n",
		"secrets/redis":         "redis-s3cret with space ",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, map[string]string{
		"OTEL_PASSWORD": "otel-s3cret", "OTEL_TOKEN": "token-s3cret", "CLIENT_ID": "gatehouse",
		"CLIENT_SECRET": "client-s3cret", "CREDENTIALS_DIRECTORY": filepath.Join(dir, "creds"),
		"REDIS_PASSWORD": "url-s3cret", "APP_HOST": "127.0.0.1", "API_KEY": "api-s3cret",
	}
}

func TestParseSecretsFromEnvironmentAndFiles(t *testing.T) {
	t.Parallel()
	dir, env := secretsEnv(t)
	doc, err := ParseFrom("gatehouse.yaml", []byte(secretsConfig), dir, Source{LookupEnv: envOf(env)})
	if err != nil {
		t.Fatal(err)
	}
	c := doc.Config
	got := map[string]string{
		"listen":        c.Server.Listen[0],
		"endpoint":      c.Tracing.Endpoint,
		"header":        c.Tracing.Headers["Authorization"],
		"introspection": c.Auth.Issuers["main"].Introspection.ClientSecret,
		"client_id":     c.Auth.Login.ClientID,
		"client_secret": c.Auth.Login.ClientSecret,
		"cookie_secret": c.Auth.Login.CookieSecret,
		"redis url":     c.Redis.URL,
		"redis pw":      c.Redis.Password,
		"target":        c.Upstreams["app"].Targets[0].Address,
		"api key":       c.Routes[0].RequestHeaders.Set["X-Api-Key"],
		"price":         c.Routes[0].RequestHeaders.Set["X-Price"],
	}
	want := map[string]string{
		"listen":        "127.0.0.1:6188",
		"endpoint":      "https://otel:otel-s3cret@collector.example.com",
		"header":        "Bearer token-s3cret",
		"introspection": "introspection-s3cret",
		"client_id":     "gatehouse",
		"client_secret": "client-s3cret",
		"cookie_secret": "cookie-s3cret-0123456789abcdef-0123456789",
		"redis url":     "redis://:url-s3cret@127.0.0.1:6379/0",
		"redis pw":      "redis-s3cret with space ",
		"target":        "127.0.0.1:3000",
		"api key":       "api-s3cret",
		"price":         "$5 $$ ${NOT_A_VAR}",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
}

// /config never shows what a reference expanded to, nor a secret read from
// a file: secret fields are redacted, other expanded values are shown as
// written.
func TestMarshalRedactedHidesExpandedValues(t *testing.T) {
	t.Parallel()
	dir, env := secretsEnv(t)
	doc, err := ParseFrom("gatehouse.yaml", []byte(secretsConfig), dir, Source{LookupEnv: envOf(env)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalRedacted(doc.Config)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("a secret leaks:\n%s", out)
	}
	for _, want := range []string{
		"endpoint: https://otel:${OTEL_PASSWORD}@collector.example.com",
		"X-Api-Key: ${API_KEY}",
		"client_id: ${CLIENT_ID}",
		"address: ${APP_HOST}:3000",
		"- 127.0.0.1:${PORT:-6188}",
		"cookie_secret_file: ${CREDENTIALS_DIRECTORY}/cookie",
		"password_file: secrets/redis",
		"url: '[redacted]'",
		"password: '[redacted]'",
		"client_secret: '[redacted]'",
		"cookie_secret: '[redacted]'",
		"X-Price: $5 $$ $${NOT_A_VAR}", // as written: it became "${NOT_A_VAR}"
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

func TestSecretFiles(t *testing.T) {
	t.Parallel()
	const login = `
auth:
  issuers: { main: { issuer: https://auth.example.com, audience: gw } }
  login:
    redirect_url: https://gw.example.com/_gatehouse/callback
    cookie_secret: 0123456789abcdef0123456789abcdef
    client_id: gatehouse
`
	route := "routes: [{name: r, respond: {status: 204}}]\n"
	tests := []struct {
		name    string
		extra   string            // keys of auth.login
		files   map[string]string // written under the config's directory
		want    string            // client_secret
		wantErr string
	}{
		{name: "relative file, newline trimmed", extra: "client_secret_file: oauth", files: map[string]string{"oauth": "s3cret\n"}, want: "s3cret"},
		{name: "absolute file", extra: "client_secret_file: ${DIR}/oauth", files: map[string]string{"oauth": "s3cret"}, want: "s3cret"},
		{name: "missing file", extra: "client_secret_file: nope",
			wantErr: "gatehouse.yaml:8:25: auth.login.client_secret_file: cannot read the client_secret: open ${DIR}/nope: no such file or directory"},
		{name: "empty file", extra: "client_secret_file: oauth", files: map[string]string{"oauth": "\n"},
			wantErr: "gatehouse.yaml:8:25: auth.login.client_secret_file: ${DIR}/oauth is empty"},
		{name: "file too large", extra: "client_secret_file: oauth", files: map[string]string{"oauth": strings.Repeat("s3cret", 11000)},
			wantErr: "gatehouse.yaml:8:25: auth.login.client_secret_file: cannot read the client_secret: ${DIR}/oauth: larger than 64 KiB; is this the right file?"},
		{name: "both", extra: "client_secret_file: oauth\n    client_secret: s3cret", files: map[string]string{"oauth": "s3cret"},
			wantErr: "gatehouse.yaml:8:25: auth.login.client_secret_file: set client_secret or client_secret_file, not both"},
		{name: "both, cookie secret", extra: "cookie_secret_file: cookie", files: map[string]string{"cookie": "s3cret"},
			wantErr: "gatehouse.yaml:8:25: auth.login.cookie_secret_file: set cookie_secret or cookie_secret_file, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := Source{LookupEnv: envOf(map[string]string{"DIR": dir})}
			doc, err := ParseFrom("gatehouse.yaml", []byte(login+"    "+tt.extra+"\n"+route), dir, env)
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "${DIR}", dir)
				if err == nil || err.Error() != want {
					t.Fatalf("err = %v\nwant %s", err, want)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := doc.Config.Auth.Login.ClientSecret; got != tt.want {
				t.Fatalf("client_secret = %q, want %q", got, tt.want)
			}
		})
	}
}

// A cookie secret too short, read from a file: the error is about the key
// the file fills, at the _file key's position, and shows only the length.
func TestSecretFileValidatedWithoutShowingIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cookie"), []byte("short-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := `
auth:
  issuers: { main: { issuer: https://auth.example.com, audience: gw } }
  login:
    redirect_url: https://gw.example.com/_gatehouse/callback
    client_id: gatehouse
    cookie_secret_file: cookie
routes: [{name: r, respond: {status: 204}}]
`
	_, err := ParseFrom("gatehouse.yaml", []byte(data), dir, Source{})
	want := "gatehouse.yaml:7:25: auth.login.cookie_secret: must be at least 32 characters of random text (openssl rand -base64 32); got 12"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

// Reload re-reads the YAML and, with it, every secret file: a rotated file
// gives the new secret.
func TestLoadRereadsSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	secret := filepath.Join(dir, "redis-password")
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, "redis: { url: redis://127.0.0.1:6379/0, password_file: redis-password }\nroutes: [{name: r, respond: {status: 204}}]\n")
	for _, pw := range []string{"first", "second"} {
		write(secret, pw+"\n")
		doc, err := LoadFrom(cfg, Source{})
		if err != nil {
			t.Fatal(err)
		}
		if doc.Config.Redis.Password != pw {
			t.Fatalf("password = %q, want %q", doc.Config.Redis.Password, pw)
		}
	}
}

// A secret whose value is wrong is reported without the value: a malformed
// reference inside it, a header value with a line break.
func TestSecretErrorsDoNotShowValues(t *testing.T) {
	t.Parallel()
	data := `
tracing:
  endpoint: http://127.0.0.1:4318
  headers: { X-Key: "abc-s3cret${", X-Other: "${BROKEN}" }
routes: [{name: r, respond: {status: 204}}]
`
	_, err := ParseFrom("gatehouse.yaml", []byte(data), t.TempDir(), Source{LookupEnv: envOf(map[string]string{"BROKEN": "line-s3cret\r\nInjected: 1"})})
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("err = %v; want two errors", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("an error shows a secret:\n%v", err)
	}
}

// Files names the secret files too, so a rotated secret reloads the
// config without a SIGHUP; their paths may use ${VAR}.
func TestFilesNamesSecretFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GATEHOUSE_TEST_CREDS", "/run/credentials/gatehouse.service")
	path := filepath.Join(dir, "gatehouse.yaml")
	data := `
auth:
  issuers:
    b: { introspection: { client_secret_file: b-secret } }
    a: { introspection: { client_secret_file: /run/secrets/a } }
  login: { client_secret_file: "${GATEHOUSE_TEST_CREDS}/oauth", cookie_secret_file: "${GATEHOUSE_TEST_UNSET_VAR}/cookie" }
redis: { url_file: redis-url, password_file: redis-password }
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	got := Files(path)
	want := []string{"/run/secrets/a", filepath.Join(dir, "b-secret"), "/run/credentials/gatehouse.service/oauth",
		filepath.Join(dir, "redis-url"), filepath.Join(dir, "redis-password")}
	if !slices.Equal(got, want) {
		t.Fatalf("Files = %q\nwant %q", got, want)
	}
}
