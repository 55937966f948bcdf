package config

import (
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

// Files returns the files a config file names that Gatehouse reloads when
// they change: TLS certificates and keys, client-certificate CAs, and the
// secret files of *_file keys (so a rotated secret is picked up without a
// SIGHUP), as absolute or config-relative paths resolved like Load does.
// It reads the file leniently (no strict decode, no validation; ${VAR}
// references resolved where the variables are set), so a config rejected
// for naming a file that does not exist yet still says which file to wait
// for. Nothing readable: nil.
func Files(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	type secretFile struct {
		ClientSecretFile string `yaml:"client_secret_file"`
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
		Auth struct {
			Issuers map[string]*struct {
				Introspection *secretFile `yaml:"introspection"`
			} `yaml:"issuers"`
			Login *struct {
				ClientSecretFile string `yaml:"client_secret_file"`
				CookieSecretFile string `yaml:"cookie_secret_file"`
			} `yaml:"login"`
		} `yaml:"auth"`
		Redis *struct {
			URLFile      string `yaml:"url_file"`
			PasswordFile string `yaml:"password_file"`
		} `yaml:"redis"`
	}
	_ = yaml.Unmarshal(data, &c) // lenient: whatever decodes
	base := dirOf(path)
	var out []string
	add := func(p string) {
		if p, problems, err := expand(p, os.LookupEnv); err == nil && len(problems) == 0 && p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(base, p)
			}
			out = append(out, filepath.Clean(p))
		}
	}
	if t := c.Server.TLS; t != nil {
		for _, cert := range t.Certificates {
			add(cert.Cert)
			add(cert.Key)
		}
		for _, ca := range t.ClientAuth {
			if ca != nil {
				add(ca.CA)
			}
		}
	}
	names := make([]string, 0, len(c.Auth.Issuers))
	for n := range c.Auth.Issuers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if is := c.Auth.Issuers[n]; is != nil && is.Introspection != nil {
			add(is.Introspection.ClientSecretFile)
		}
	}
	if l := c.Auth.Login; l != nil {
		add(l.ClientSecretFile)
		add(l.CookieSecretFile)
	}
	if r := c.Redis; r != nil {
		add(r.URLFile)
		add(r.PasswordFile)
	}
	return out
}
