package config

import (
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// Files returns the files a config file names that Gatehouse reloads when
// they change: TLS certificates and keys, and client-certificate CAs, as
// absolute or config-relative paths resolved like Load does. It reads the
// file leniently (no strict decode, no validation), so a config rejected
// for naming a file that does not exist yet still says which file to
// wait for. Nothing readable: nil.
func Files(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var c struct {
		Server struct {
			TLS *struct {
				Certificates []struct {
					Cert string `yaml:"cert"`
					Key  string `yaml:"key"`
				} `yaml:"certificates"`
				ClientAuth []*struct {
					CA string `yaml:"ca"`
				} `yaml:"client_auth"`
			} `yaml:"tls"`
		} `yaml:"server"`
	}
	_ = yaml.Unmarshal(data, &c) // lenient: whatever decodes
	t := c.Server.TLS
	if t == nil {
		return nil
	}
	base := dirOf(path)
	var out []string
	add := func(p string) {
		if p == "" {
			return
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(base, p)
		}
		out = append(out, filepath.Clean(p))
	}
	for _, cert := range t.Certificates {
		add(cert.Cert)
		add(cert.Key)
	}
	for _, ca := range t.ClientAuth {
		if ca != nil {
			add(ca.CA)
		}
	}
	return out
}
