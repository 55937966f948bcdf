package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Source is where a config's values from outside the file come from:
// environment variables for ${VAR} references and the files named by
// *_file keys. A nil field means the process's (os.LookupEnv, and the file
// system). Tests pass their own, so they need not touch the process's
// environment.
type Source struct {
	LookupEnv func(name string) (string, bool)
	ReadFile  func(path string) ([]byte, error)
}

func (s Source) lookupEnv(name string) (string, bool) {
	if s.LookupEnv != nil {
		return s.LookupEnv(name)
	}
	return os.LookupEnv(name)
}

// maxSecretFile bounds what a *_file key reads: secrets are a few hundred
// bytes, and a path such as /dev/zero must not exhaust memory.
const maxSecretFile = 64 << 10

func (s Source) readFile(path string) ([]byte, error) {
	if s.ReadFile != nil {
		return s.ReadFile(path)
	}
	b, err := readLimited(path, maxSecretFile)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%s: larger than %d KiB; is this the right file?", path, maxSecretFile>>10)
	}
	return b, err
}

// errBadReference is a "${" that does not start a well-formed reference.
// The message does not quote the text: it may be part of a secret.
var errBadReference = errors.New(`"${" must start a reference such as ${NAME} or ${NAME:-default}, NAME of letters, digits and _ (write $${ for a literal "${")`)

// expand replaces ${NAME} and ${NAME:-default} in s with environment
// variables. NAME unset or empty takes the default, as in a POSIX shell.
// Without a default, an unset or empty NAME is a problem, reported in
// problems (one per name, in order) with the reference left out: a secret
// that silently became "" would turn a confidential client public, so
// an empty value must be asked for with ${NAME:-}. "$${" is a literal
// "${"; any other "$" is itself, so values written before expansion
// existed (a "$5" in a body, a "$$" in a password) keep their meaning
// unless they contain "${". Defaults are literal text: no nesting.
func expand(s string, lookup func(string) (string, bool)) (out string, problems []string, err error) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), problems, nil
		}
		if i > 0 && s[i-1] == '$' { // "$${": a literal "${"
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		s = s[i+2:]
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", nil, errBadReference
		}
		ref := s[:end]
		s = s[end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) || strings.Contains(def, "${") {
			return "", nil, errBadReference
		}
		val, ok := lookup(name)
		var p string
		switch {
		case val != "":
			b.WriteString(val)
			continue
		case hasDef:
			b.WriteString(def)
			continue
		case ok:
			p = fmt.Sprintf("environment variable %s is empty (write ${%s:-} to allow that)", name, name)
		default:
			p = fmt.Sprintf("environment variable %s is not set", name)
		}
		if !contains(problems, p) {
			problems = append(problems, p)
		}
	}
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// trimSecret is a secret file's content without its line ending: files
// written by echo, editors and `kubectl create secret --from-file` of such
// a file end in one. Other white space is kept: it may be part of the secret.
func trimSecret(b []byte) string {
	return strings.TrimRight(string(b), "\r\n")
}

// expandScalar is the string value of n with its ${VAR} references
// expanded. Each unset variable is an error at n; the value as written is
// remembered for /config when it differs.
func (d *decoder) expandScalar(n *yaml.Node, path string) string {
	s, problems, err := expand(n.Value, d.src.lookupEnv)
	if err != nil {
		d.fail(n, path, "%v", err)
		return ""
	}
	for _, p := range problems {
		d.fail(n, path, "%s", p)
	}
	if s != n.Value {
		if d.doc.Config.expanded == nil {
			d.doc.Config.expanded = map[string]string{}
		}
		d.doc.Config.expanded[path] = n.Value
	}
	return s
}

// readFiles fills each string field of the struct v (at path) that a
// `file:"<key>"` field names from the file that field gives: the secret
// behind client_secret_file becomes client_secret. nodes holds the value
// nodes of the keys the file set, for positions. Setting both keys is an
// error, and so is a file that cannot be read or is empty; the messages
// name the key and the file, never the content.
func (d *decoder) readFiles(v reflect.Value, path string, nodes map[string]*yaml.Node) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		target := t.Field(i).Tag.Get("file")
		name := v.Field(i).String()
		if target == "" || name == "" {
			continue
		}
		key := t.Field(i).Tag.Get("yaml")
		n := nodes[key]
		fp := join(path, key)
		j := fieldByKey(t, target)
		if j < 0 {
			panic(fmt.Sprintf("config: %s.%s names no field %q", t.Name(), t.Field(i).Name, target))
		}
		if _, both := nodes[target]; both {
			d.fail(n, fp, "set %s or %s, not both", target, key)
			continue
		}
		file := name
		if !filepath.IsAbs(file) {
			file = filepath.Join(d.doc.BaseDir, file)
		}
		b, err := d.src.readFile(file)
		if err != nil {
			d.fail(n, fp, "cannot read the %s: %v", target, err)
			continue
		}
		secret := trimSecret(b)
		if secret == "" {
			d.fail(n, fp, "%s is empty", file)
			continue
		}
		v.Field(j).SetString(secret)
		d.doc.pos[join(path, target)] = Pos{n.Line, n.Column}
	}
}

func fieldByKey(t reflect.Type, key string) int {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("yaml") == key {
			return i
		}
	}
	return -1
}
