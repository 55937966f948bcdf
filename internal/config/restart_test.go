package config

import (
	"strings"
	"testing"
)

// A reload's restart-only changes are named, and InEffect shows them as
// the process runs them: the started values, written as the started file
// wrote them, while everything else is the new file's.
func TestRestartOnlySettingsInEffect(t *testing.T) {
	t.Parallel()
	parse := func(text string, env map[string]string) *Config {
		doc, err := ParseFrom("t.yaml", []byte(text), t.TempDir(), Source{LookupEnv: envOf(env)})
		if err != nil {
			t.Fatal(err)
		}
		return doc.Config
	}
	const routes = "routes: [{ name: %s, match: { path_prefix: / }, respond: { status: 204 } }]\n"
	started := parse(`
server: { listen: ["127.0.0.1:6188"], write_timeout: 30s, max_connections_per_ip: 10, fast_http1: true }
admin: { listen: "127.0.0.1:9901" }
tracing: { endpoint: "${OTEL_EP}" }
log: { access: /var/log/started.log }
`+strings.Replace(routes, "%s", "first", 1), map[string]string{"OTEL_EP": "http://127.0.0.1:4318/v1?api_key=env-s3cret"})
	cur := parse(`
server: { listen: ["127.0.0.1:6189"], write_timeout: 5s, max_connections_per_ip: 2, fast_http1: false, shutdown_grace: 3s }
admin: { listen: "127.0.0.1:9901", allowed_hosts: [only.example] }
tracing: { endpoint: "http://127.0.0.1:4318/v1" }
log: { access: "${LOG_FILE}" }
`+strings.Replace(routes, "%s", "second", 1), map[string]string{"LOG_FILE": "/var/log/new.log"})

	want := "server.listen, server.write_timeout, server.max_connections_per_ip, server.fast_http1, server.shutdown_grace, log, admin, tracing"
	if got := strings.Join(RestartOnlyChanges(started, cur), ", "); got != want {
		t.Errorf("changes:\n%s\nwant\n%s", got, want)
	}
	out, err := MarshalRedacted(InEffect(started, cur))
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, in := range []string{"127.0.0.1:6188", "write_timeout: 30s", "max_connections_per_ip: 10", "fast_http1: true",
		"endpoint: ${OTEL_EP}", "access: /var/log/started.log", "name: second"} {
		if !strings.Contains(text, in) {
			t.Errorf("/config lacks %q:\n%s", in, text)
		}
	}
	for _, out := range []string{"6189", "only.example", "env-s3cret", "shutdown_grace: 3s", "LOG_FILE", "new.log"} {
		if strings.Contains(text, out) {
			t.Errorf("/config shows %q, not in effect or secret:\n%s", out, text)
		}
	}
	if cur.Server.WriteTimeout.D().String() != "5s" || cur.Tracing.Endpoint != "http://127.0.0.1:4318/v1" {
		t.Error("InEffect changed the loaded config")
	}
	if len(RestartOnlyChanges(started, started)) != 0 || InEffect(started, started) != started {
		t.Error("no change, yet something is in effect differently")
	}
}
