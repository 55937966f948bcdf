// Package gatehouse carries the files shipped inside the binary: the
// default config (gatehouse.yaml) and the landing page it serves (www/),
// used by `gatehouse demo`.
package gatehouse

import "embed"

// DefaultConfig is the shipped gatehouse.yaml.
//
//go:embed gatehouse.yaml
var DefaultConfig []byte

// Site is the shipped www/ directory.
//
//go:embed www
var Site embed.FS
