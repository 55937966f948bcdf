package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Redacted is what secret values are replaced with.
const Redacted = "[redacted]"

// MarshalRedacted renders the effective config as YAML with every field
// tagged `secret:"true"` replaced by "[redacted]", for the admin /config
// endpoint. Any other value written with ${VAR} references is shown as
// written, references unexpanded: an environment variable may hold a
// secret even where the field is not one (a header value, a URL's
// password). A URL's password written in the file is shown as "xxxxx"
// (RedactURL), whichever field holds it. The config itself is not
// modified.
func MarshalRedacted(c *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	r := redactor{expanded: c.expanded}
	r.redact(&n, reflect.TypeOf(*c), "")
	return yaml.Marshal(&n)
}

// redactor walks the encoded config, keeping key paths as the decoder
// writes them.
type redactor struct {
	expanded map[string]string // key path -> value as written
}

// redact walks n (at path) alongside the Go type it was encoded from.
func (r redactor) redact(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.ScalarNode {
		if raw, ok := r.expanded[path]; ok {
			*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: raw}
		}
		if n.Tag == "!!str" {
			n.Value = RedactURL(n.Value)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			r.redact(c, t, path)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			for j := 0; j < t.NumField(); j++ {
				f := t.Field(j)
				if f.Tag.Get("yaml") != n.Content[i].Value {
					continue
				}
				if f.Tag.Get("secret") == "true" {
					if v := n.Content[i+1]; !(v.Kind == yaml.ScalarNode && v.Value == "") {
						*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redacted}
					}
				} else if f.Tag.Get("headers") == "true" {
					r.redactHeaders(n.Content[i+1], join(path, n.Content[i].Value))
				} else {
					r.redact(n.Content[i+1], f.Type, join(path, n.Content[i].Value))
				}
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				r.redact(n.Content[i], t.Elem(), join(path, n.Content[i-1].Value))
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				r.redact(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
}

// isReference reports whether s is one ${NAME} reference and nothing else:
// a default (${NAME:-value}) is a literal written in the file, which may
// be the secret.
func isReference(s string) bool {
	name, pre := strings.CutPrefix(s, "${")
	name, post := strings.CutSuffix(name, "}")
	if !pre || !post || name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// redactHeaders redacts the values of a header map (n, at path) written
// as literals under names that say they carry a credential
// (credentialHeader); values written with ${VAR} references show as
// written, and the rest as any string (RedactURL).
func (r redactor) redactHeaders(n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 1; i < len(n.Content); i += 2 {
		v, kp := n.Content[i], join(path, n.Content[i-1].Value)
		_, reference := r.expanded[kp]
		if !reference && credentialHeader(n.Content[i-1].Value) && v.Kind == yaml.ScalarNode && v.Value != "" && v.Value != "*" {
			*v = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: Redacted}
			continue
		}
		r.redact(v, reflect.TypeOf(""), kp)
	}
}

// credentialHeader reports whether a header's name says its value is a
// credential: Authorization, Cookie, or a name holding token, secret,
// key, password, auth, session, credential or signature (X-Api-Key,
// X-Upstream-Token). A literal written into the config under such a name
// is as secret as a client_secret.
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, w := range []string{"token", "secret", "key", "passw", "auth", "session", "credential", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// RedactURL returns s with the password of a URL's userinfo replaced by
// "xxxxx" (url.URL.Redacted), and any other string as it is: for
// /config and for validation messages, which echo what they refuse.
//
// A password url.Parse cannot read as one (it holds "/", "?", "#", a
// space or a stray "%": generated and base64 passwords do) is masked too,
// from the first ":" of the authority to the last "@" ("https://otel:
// kX9/x==@host" parses as host "otel:kX9" and a path): these strings are
// shown because they are wrong, and what is wrong may be the password. So
// is "user:password@host", a target written with credentials. A user
// name without a password is masked as well ("https://xxxxx@host"): a
// token is often sent that way. A ${VAR} reference is left as written.
func RedactURL(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		if name := u.User.Username(); name != "" && !isReference(name) {
			// A name alone is how tokens ride in URLs (a Sentry DSN's
			// key, a personal access token before "@"): masked too.
			u.User = url.User("xxxxx")
			return u.String()
		}
		return s
	}
	start, scheme := 0, false
	if i := strings.Index(s, "://"); i >= 0 {
		start, scheme = i+len("://"), true
	} else if strings.HasPrefix(s, "//") {
		start, scheme = len("//"), true // scheme-relative
	}
	if at < start {
		return s
	}
	if scheme {
		// A user name alone, in a URL that does not parse: masked as
		// above, from the start of the authority to its first "@" (a
		// token holds none; a user that is an address, "alerts@example.com",
		// is masked in part and its password below). The authority ends
		// at the first "/", "?", "#" or "\\" (an "@" after that is in the
		// path: "h/users/@me"); a name with whitespace is prose ("see
		// https://a.example or write to b@c.example"); one with ":" has a
		// password, masked below. The password is looked for after this
		// either way.
		authority := s[start:]
		if i := strings.IndexAny(authority, "/?#\\"); i >= 0 {
			authority = authority[:i]
		}
		if a := strings.IndexByte(authority, '@'); a > 0 {
			if name := authority[:a]; !strings.ContainsRune(name, ':') && !strings.ContainsFunc(name, unicode.IsSpace) && !isReference(name) {
				s = s[:start] + "xxxxx" + s[start+a:]
				at = strings.LastIndexByte(s, '@')
			}
		}
	}
	from := start
	if strings.HasPrefix(s[start:at], "[") {
		// An IPv6 literal: its colons are the address's.
		if j := strings.IndexByte(s[start:at], ']'); j >= 0 {
			from = start + j
		}
	}
	colon := strings.IndexByte(s[from:at], ':')
	if colon < 0 {
		return s
	}
	colon += from
	// Even what reads as a port and a path ("h:8080/users/@me") is
	// masked: "otel:2024/kX9=@host" is a password all the same.
	pw := s[colon+1 : at]
	if isReference(pw) {
		return s // a reference, as /config shows it: not the secret
	}
	return s[:colon+1] + "xxxxx" + s[at:]
}
