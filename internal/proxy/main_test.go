package proxy

import (
	"os"
	"testing"

	"gatehouse/internal/testutil"
)

// TestMain fails the package's tests if they leave goroutines running.
func TestMain(m *testing.M) { os.Exit(testutil.CheckGoroutinesMain(m)) }
