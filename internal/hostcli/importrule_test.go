package hostcli

import (
	"testing"

	"github.com/pinacle/pinacle-node/internal/deptest"
)

// TestImportRule: the host CLI is built for macOS, so it uses the node's
// API types and renderer and nothing of the node's Linux implementation.
func TestImportRule(t *testing.T) {
	for _, pkg := range []string{".", "../../cmd/pinacle"} {
		deptest.Check(t, pkg, deptest.Rule{
			GOOS: "darwin",
			Allowed: []string{"cmd/pinacle", "internal/hostcli", "internal/render", "internal/api",
				"internal/cli", "internal/errdefs", "internal/lifecycle", "podspec"},
			Denied: []string{"go.etcd.io/bbolt", "github.com/vishvananda", "github.com/containernetworking"},
		})
	}
}
