package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Files names the certificate, key and client CA files even of a config
// that does not validate, resolved against the config's directory.
func TestFilesOfARejectedConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	data := `
server:
  tls:
    certificates:
      - { cert: certs/new.crt, key: /etc/keys/new.key }
    client_auth:
      - { hosts: [a.example], ca: ca.pem }
      -
routes: not-a-list
unknown_key: 1
`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("the config loaded; the test needs a rejected one")
	}
	got := Files(path)
	want := []string{filepath.Join(dir, "certs/new.crt"), "/etc/keys/new.key", filepath.Join(dir, "ca.pem")}
	if !slices.Equal(got, want) {
		t.Fatalf("Files = %q, want %q", got, want)
	}
	if Files(filepath.Join(dir, "missing.yaml")) != nil {
		t.Fatal("a missing config named files")
	}
}

// A config file over MaxFileBytes is refused before it is decoded: a
// 50 MB file took a minute and 4 GiB to decode, at every reload.
func TestConfigFileSizeBounded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "big.yaml")
	body := "routes:\n  - { name: r, match: { path_prefix: / }, respond: { status: 204 } }\n"
	big := body + "# " + strings.Repeat("x", MaxFileBytes) + "\n"
	if err := os.WriteFile(path, []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than 4 MiB") {
		t.Fatalf("a %d-byte file: %v", len(big), err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("a small file: %v", err)
	}
}
