package config

import (
	"reflect"

	"gopkg.in/yaml.v3"
)

// Redacted is what secret values are replaced with.
const Redacted = "[redacted]"

// MarshalRedacted renders the effective config as YAML with every field
// tagged `secret:"true"` replaced by "[redacted]", for the admin /config
// endpoint. The config itself is not modified.
func MarshalRedacted(c *Config) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return nil, err
	}
	redact(&n, reflect.TypeOf(*c))
	return yaml.Marshal(&n)
}

// redact walks n alongside the Go type it was encoded from.
func redact(n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			redact(c, t)
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
				} else {
					redact(n.Content[i+1], f.Type)
				}
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				redact(n.Content[i], t.Elem())
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				redact(c, t.Elem())
			}
		}
	}
}
