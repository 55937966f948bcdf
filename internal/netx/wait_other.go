//go:build !linux

package netx

import (
	"errors"
	"syscall"
)

// waitRaw is unsupported here: a server keeps reading as before.
func waitRaw(syscall.RawConn) error { return errors.ErrUnsupported }
