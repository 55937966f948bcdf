package testutil

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

// EnvFastHTTP1 names the environment variable that picks the plain
// HTTP/1.1 server of every Gatehouse process the tests start: "false"
// runs the integration suite on net/http alone, "true" on h1server (the
// default of server.fast_http1). Unset, configs are left as written.
// A config that sets server.fast_http1 itself keeps its value: such a test
// is about one server, or both, by name. scripts/test-all.sh runs the
// suite once more with GATEHOUSE_TEST_FAST_HTTP1=false.
const EnvFastHTTP1 = "GATEHOUSE_TEST_FAST_HTTP1"

// FastHTTP1FromEnv returns the value of GATEHOUSE_TEST_FAST_HTTP1, and
// whether it is set (to something other than "").
func FastHTTP1FromEnv() (fast, set bool, err error) {
	v := os.Getenv(EnvFastHTTP1)
	if v == "" {
		return false, false, nil
	}
	fast, err = strconv.ParseBool(v)
	if err != nil {
		return false, false, fmt.Errorf("%s=%q: want true or false", EnvFastHTTP1, v)
	}
	return fast, true, nil
}

// ConfigForEnv returns config as the tests' environment wants it run:
// with server.fast_http1 set from GATEHOUSE_TEST_FAST_HTTP1 (see
// DefaultFastHTTP1), or unchanged when that is unset.
func ConfigForEnv(tb testing.TB, config []byte) []byte {
	tb.Helper()
	fast, set, err := FastHTTP1FromEnv()
	if err != nil {
		tb.Fatal(err)
	}
	if !set {
		return config
	}
	out, err := DefaultFastHTTP1(config, fast)
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return out
}

// DefaultFastHTTP1 returns config with server.fast_http1 set to fast
// (and server created if absent), unless config already sets it, directly
// or through a merge key. The YAML is decoded into a node tree and encoded
// again, so comments, key order and quoting survive, but not the layout:
// line numbers may move. Input that is not a YAML mapping (a syntax error,
// an empty file: tests of Gatehouse's own errors) is returned unchanged,
// for the binary to report.
func DefaultFastHTTP1(config []byte, fast bool) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(config, &doc); err != nil || len(doc.Content) == 0 {
		return config, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return config, nil
	}
	var server *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "server" {
			server = root.Content[i+1]
		}
	}
	value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(fast)}
	switch {
	case server == nil:
		root.Content = append(root.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "server"},
			&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{fastHTTP1Key(), value}})
	case server.Kind == yaml.ScalarNode && server.Tag == "!!null": // "server:" with nothing under it
		*server = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{fastHTTP1Key(), value}}
	case server.Kind == yaml.MappingNode:
		var fields map[string]any // merge keys and aliases resolved
		if err := server.Decode(&fields); err != nil {
			return config, nil
		}
		if _, ok := fields["fast_http1"]; ok {
			return config, nil
		}
		server.Content = append(server.Content, fastHTTP1Key(), value)
	case server.Kind == yaml.AliasNode:
		// Adding the key would change the anchored mapping everywhere.
		return nil, fmt.Errorf("server is an alias; set server.fast_http1 in the test's config explicitly")
	default:
		return config, nil // not a mapping: Gatehouse reports the type error
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode the config with server.fast_http1: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode the config with server.fast_http1: %w", err)
	}
	return buf.Bytes(), nil
}

func fastHTTP1Key() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "fast_http1"}
}

// applyEnvToFile rewrites the config file at path in place with
// ConfigForEnv. In place, not as a copy: tests that
// reload edit the file the process watches.
func applyEnvToFile(tb testing.TB, path string) {
	tb.Helper()
	if _, set, err := FastHTTP1FromEnv(); err != nil {
		tb.Fatal(err)
	} else if !set {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	out := ConfigForEnv(tb, data)
	if bytes.Equal(out, data) {
		return
	}
	if err := os.WriteFile(path, out, 0o644); err != nil { // an existing file keeps its mode
		tb.Fatal(err)
	}
}
