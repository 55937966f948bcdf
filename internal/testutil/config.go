package testutil

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	"gopkg.in/yaml.v3"
)

// EnvFastServers names the environment variable that picks the servers
// of every Gatehouse process the tests start: "false" runs the
// integration suite on net/http alone (HTTP/1.1 and HTTP/2), "true" on
// Gatehouse's own (h1server on the plain listeners, h2server for HTTP/2
// over TLS and cleartext: the defaults of server.fast_http1 and
// server.fast_http2).
// Unset, configs are left as written. A config that sets one of the two
// keys itself keeps that key's value: such a test is about one server,
// or both, by name. scripts/test-all.sh runs the suite once more with
// GATEHOUSE_TEST_FAST_SERVERS=false.
const EnvFastServers = "GATEHOUSE_TEST_FAST_SERVERS"

// fastKeys are the server keys EnvFastServers sets.
var fastKeys = []string{"fast_http1", "fast_http2"}

// FastServersFromEnv returns the value of GATEHOUSE_TEST_FAST_SERVERS,
// and whether it is set (to something other than "").
func FastServersFromEnv() (fast, set bool, err error) {
	v := os.Getenv(EnvFastServers)
	if v == "" {
		return false, false, nil
	}
	fast, err = strconv.ParseBool(v)
	if err != nil {
		return false, false, fmt.Errorf("%s=%q: want true or false", EnvFastServers, v)
	}
	return fast, true, nil
}

// ConfigForEnv returns config as the tests' environment wants it run:
// with server.fast_http1 and server.fast_http2 set from
// GATEHOUSE_TEST_FAST_SERVERS (see DefaultFastServers), or unchanged when
// that is unset.
func ConfigForEnv(tb testing.TB, config []byte) []byte {
	tb.Helper()
	fast, set, err := FastServersFromEnv()
	if err != nil {
		tb.Fatal(err)
	}
	if !set {
		return config
	}
	out, err := DefaultFastServers(config, fast)
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return out
}

// DefaultFastServers returns config with server.fast_http1 and
// server.fast_http2 set to fast (and server created if absent), each
// unless config already sets it, directly or through a merge key. The
// YAML is decoded into a node tree and encoded again, so comments, key
// order and quoting survive, but not the layout: line numbers may move.
// Input that is not a YAML mapping (a syntax error, an empty file: tests
// of Gatehouse's own errors) is returned unchanged, for the binary to
// report; so is a config that sets both keys.
func DefaultFastServers(config []byte, fast bool) ([]byte, error) {
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
	pairs := func(keys []string) []*yaml.Node {
		var out []*yaml.Node
		for _, k := range keys {
			out = append(out,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(fast)})
		}
		return out
	}
	switch {
	case server == nil:
		root.Content = append(root.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "server"},
			&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: pairs(fastKeys)})
	case server.Kind == yaml.ScalarNode && server.Tag == "!!null": // "server:" with nothing under it
		*server = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: pairs(fastKeys)}
	case server.Kind == yaml.MappingNode:
		var fields map[string]any // merge keys and aliases resolved
		if err := server.Decode(&fields); err != nil {
			return config, nil
		}
		var missing []string
		for _, k := range fastKeys {
			if _, ok := fields[k]; !ok {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			return config, nil
		}
		server.Content = append(server.Content, pairs(missing)...)
	case server.Kind == yaml.AliasNode:
		// Adding the keys would change the anchored mapping everywhere.
		return nil, fmt.Errorf("server is an alias; set server.fast_http1 and server.fast_http2 in the test's config explicitly")
	default:
		return config, nil // not a mapping: Gatehouse reports the type error
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode the config with the fast server keys: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode the config with the fast server keys: %w", err)
	}
	return buf.Bytes(), nil
}

// applyEnvToFile rewrites the config file at path in place with
// ConfigForEnv. In place, not as a copy: tests that
// reload edit the file the process watches.
func applyEnvToFile(tb testing.TB, path string) {
	tb.Helper()
	if _, set, err := FastServersFromEnv(); err != nil {
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
