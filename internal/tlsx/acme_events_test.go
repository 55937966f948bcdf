package tlsx

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestACMEFailureIsOneEventUntilRecovered (issue 15): certmagic retries a
// failed order with backoff; only the first failure is a warning, and the
// next success says it recovered.
func TestACMEFailureIsOneEventUntilRecovered(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a := &ACME{c: ACMEConfig{Events: slog.New(slog.NewJSONHandler(&logs, nil))},
		status: map[string]*ACMEStatus{"a.example": {Name: "a.example"}}}
	ctx := context.Background()
	fail := map[string]any{"identifier": "a.example", "renewal": false, "error": errors.New("rate limited")}
	for range 4 {
		_ = a.onEvent(ctx, "cert_failed", fail)
	}
	_ = a.onEvent(ctx, "cert_obtained", map[string]any{"identifier": "a.example", "renewal": false})
	_ = a.onEvent(ctx, "cert_failed", fail)
	out := logs.String()
	if n := strings.Count(out, `"level":"WARN","msg":"acme: obtaining a certificate failed`); n != 2 {
		t.Errorf("%d warnings for two runs of failures, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, `"msg":"acme: certificate obtained","name":"a.example","renewal":false,"recovered":true`) {
		t.Errorf("no recovery event:\n%s", out)
	}
}
