package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Pos is a 1-based line and column in the config file.
type Pos struct{ Line, Col int }

// FieldError is one problem with a config file.
type FieldError struct {
	File string
	Pos  Pos
	Path string // key path such as routes[2].upstream; empty for the whole file
	Msg  string
}

func (e FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Pos.Line, e.Pos.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, in file order. It is an error.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Document is a decoded config together with where each value came from.
type Document struct {
	File   string // as given to Parse; used in errors
	Config *Config
	// BaseDir resolves relative paths (static roots): the config file's directory.
	BaseDir string
	pos     map[string]Pos
}

// PosOf returns the position of the value at path, or of its nearest
// ancestor that has one.
func (d *Document) PosOf(path string) Pos {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		if path == "" {
			return Pos{}
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

func (d *Document) errAt(path, format string, args ...any) FieldError {
	return FieldError{File: d.File, Pos: d.PosOf(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Load reads, decodes, defaults and validates the file at path, with
// ${VAR} references and *_file keys resolved from the process's
// environment and file system.
func Load(path string) (*Document, error) {
	return LoadFrom(path, Source{})
}

// LoadFrom is Load with environment variables and secret files from src.
func LoadFrom(path string, src Source) (*Document, error) {
	data, err := readLimited(path, MaxFileBytes)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("config: %s: larger than %d MiB; a config file is at most that", path, MaxFileBytes>>20)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseFrom(path, data, dirOf(path), src)
}

// MaxFileBytes bounds a config file. A real one, a thousand routes
// included, is a few hundred KiB; decoding a 50 MB file took a minute and
// 4 GiB, at every reload.
const MaxFileBytes = 4 << 20

// errTooLarge is readLimited's error for a file over its bound.
var errTooLarge = errors.New("file too large")

// readLimited reads the file at path, or fails with errTooLarge if it is
// over max bytes (reading no more than one byte past them).
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, errTooLarge
	}
	return data, nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i+1]
	}
	return "."
}

// Parse decodes data (named file in errors) strictly, applies defaults and
// validates. Relative paths in the config resolve against baseDir. On any
// problem it returns Errors listing all of them. ${VAR} references and
// *_file keys are resolved from the process's environment and file system.
func Parse(file string, data []byte, baseDir string) (*Document, error) {
	return ParseFrom(file, data, baseDir, Source{})
}

// ParseFrom is Parse with environment variables and secret files from src.
func ParseFrom(file string, data []byte, baseDir string, src Source) (*Document, error) {
	doc := &Document{File: file, Config: &Config{}, BaseDir: baseDir, pos: map[string]Pos{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{syntaxError(file, err)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Msg: "the file is empty; see docs/config.md"}}
	}
	d := &decoder{doc: doc, src: src}
	d.decode(root.Content[0], reflect.ValueOf(doc.Config).Elem(), "")
	applyDefaults(doc)
	errs := d.errs
	// Validate even when decoding failed, to report every problem at once,
	// but drop what validation says about values that failed to decode
	// (and the routes holding them): those would be echoes, not news.
	failed := newFailedPaths(d.errs)
	for _, ve := range validate(doc) {
		if !failed.related(ve.Path) {
			errs = append(errs, ve)
		}
	}
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	return doc, nil
}

// failedPaths are the key paths that failed to decode, and the paths
// above them, for related: sets, so that a file with thousands of errors
// of both kinds is not checked pair by pair (a 32 000-upstream file of
// unknown keys took 16 s, at every reload).
type failedPaths struct {
	at, above map[string]bool
}

// newFailedPaths indexes the paths of decodeErrs. A failed x_file stands
// for x too: a secret that could not be read is not also "required" or
// "too short".
func newFailedPaths(decodeErrs []FieldError) failedPaths {
	f := failedPaths{at: map[string]bool{}, above: map[string]bool{}}
	for _, de := range decodeErrs {
		for _, dp := range []string{de.Path, strings.TrimSuffix(de.Path, "_file")} {
			f.at[dp] = true
			for i := 1; i < len(dp); i++ {
				if dp[i] == '.' || dp[i] == '[' {
					f.above[dp[:i]] = true
				}
			}
		}
	}
	return f
}

// related reports whether path is at, above or below a path that failed
// to decode.
func (f failedPaths) related(path string) bool {
	if len(f.at) == 0 {
		return false
	}
	if f.at[path] || f.above[path] {
		return true
	}
	for i := 1; i < len(path); i++ {
		if (path[i] == '.' || path[i] == '[') && f.at[path[:i]] {
			return true
		}
	}
	return false
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(file string, err error) FieldError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return FieldError{File: file, Pos: Pos{Line: n, Col: 1}, Msg: "invalid YAML: " + m[2]}
	}
	return FieldError{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

func sortErrors(es []FieldError) Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return Errors(es)
}

// decoder maps a yaml.Node tree onto the schema by reflection, recording the
// position of every value and reporting unknown keys, duplicate keys and
// type mismatches with their paths.
//
// Aliases are followed, but cannot blow up ("billion laughs"): decoding
// follows the schema, whose lists hold mappings or scalars only, so an
// alias to a list of lists is a type error, not an expansion.
//
// String values are expanded (${VAR}) here, after YAML has been parsed,
// so errors keep the positions of the file as written; a key tagged
// `file:"<key>"` is read into its sibling <key> once its struct is done.
type decoder struct {
	doc  *Document
	src  Source
	errs []FieldError
}

var (
	durationType = reflect.TypeOf(Duration(0))
	sizeType     = reflect.TypeOf(Size(0))
	simpleKey    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, FieldError{
		File: d.doc.File, Pos: Pos{n.Line, n.Column}, Path: path, Msg: fmt.Sprintf(format, args...),
	})
}

func join(path, key string) string {
	if !simpleKey.MatchString(key) {
		return fmt.Sprintf("%s[%q]", path, key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.doc.pos[path] = Pos{n.Line, n.Column}
	switch v.Type() {
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case sizeType:
		d.decodeSize(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a string, got %s", kindName(n))
			return
		}
		if !isNull(n) {
			v.SetString(d.expandScalar(n, path))
		}
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || err != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") || err != nil {
			d.fail(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("config: unsupported schema type %s", v.Type()))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind == yaml.ScalarNode {
		// A struct with a `scalar:"true"` field may be written as just that
		// field's value: `- 127.0.0.1:3001` for `- {address: 127.0.0.1:3001}`.
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("scalar") == "true" {
				d.decode(n, v.Field(i), join(path, v.Type().Field(i).Tag.Get("yaml")))
				return
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys, got %s", describe(n))
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	names := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if tag := t.Field(i).Tag.Get("yaml"); tag != "" {
			fields[tag] = i
			names = append(names, tag)
		}
	}
	seen := map[string]bool{}
	nodes := map[string]*yaml.Node{} // value nodes of the keys decoded
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		fp := join(path, key)
		if seen[key] {
			d.fail(k, fp, "duplicate key")
			continue
		}
		seen[key] = true
		idx, ok := fields[key]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := suggest(key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += fmt.Sprintf(" (expected one of: %s)", strings.Join(names, ", "))
			}
			d.fail(k, fp, "%s", msg)
			continue
		}
		before := len(d.errs)
		d.decode(val, v.Field(idx), fp)
		nodes[key] = val
		if hint, ok := t.Field(idx).Tag.Lookup("zero"); ok && len(d.errs) == before && !isNull(val) && v.Field(idx).IsZero() {
			// A key whose absence means its default: an explicit 0 would
			// be taken for the default without a word, which is not what
			// "0" says (no timeout, no retries, no pool).
			if hint == "" {
				hint = "leave the key out for its default"
			}
			d.fail(val, fp, "must be more than 0 (%s)", hint)
		}
	}
	d.readFiles(v, path, nodes)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(n.Content)/2))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fp := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "keys must be strings")
			continue
		}
		key := reflect.ValueOf(k.Value)
		if v.MapIndex(key).IsValid() {
			d.fail(k, fp, "duplicate key")
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, elem, fp)
		v.SetMapIndex(key, elem)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	// A single scalar where a list of strings is expected is a one-element
	// list: `methods: GET` reads as `methods: [GET]`.
	if n.Kind == yaml.ScalarNode && !isNull(n) && scalarElem(v.Type().Elem()) {
		s := reflect.MakeSlice(v.Type(), 1, 1)
		d.decode(n, s.Index(0), path+"[0]")
		v.Set(s)
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

// scalarElem reports whether a list element of type t can be written as
// a scalar: strings, and structs with a `scalar:"true"` field.
func scalarElem(t reflect.Type) bool {
	if t.Kind() == reflect.String {
		return true
	}
	if t.Kind() == reflect.Struct {
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Tag.Get("scalar") == "true" {
				return true
			}
		}
	}
	return false
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && n.Value == "0" {
		v.SetInt(0)
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		d.fail(n, path, "expected a duration such as 250ms, 5s or 1m, got %s", describe(n))
		return
	}
	if dur < 0 {
		d.fail(n, path, "must not be negative")
		return
	}
	v.SetInt(int64(dur))
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1},
}

// ParseSize parses "1024", "64KiB", "10MB", "1GiB".
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || i < 0 {
		return 0, errors.New("bad size")
	}
	if i > (1<<62)/mult {
		return 0, errors.New("size too large")
	}
	return Size(i * mult), nil
}

func (d *decoder) decodeSize(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	sz, err := ParseSize(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		d.fail(n, path, "expected a size such as 1048576, 64KiB or 10MB, got %s", describe(n))
		return
	}
	v.SetInt(int64(sz))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a scalar"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return kindName(n)
}

// suggest returns the candidate closest to s by edit distance, if it is
// close enough to be a plausible typo. A candidate is also compared by its
// parts ("admin-portal" by "admin" and "portal"), so "admn" suggests
// "admin-portal".
func suggest(s string, candidates []string) string {
	s = strings.ToLower(s)
	best, bestD := "", len(s)/3+2
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := levenshtein(s, lc)
		for _, part := range strings.FieldsFunc(lc, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
			if len(part) >= 3 {
				d = min(d, levenshtein(s, part)+1)
			}
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
