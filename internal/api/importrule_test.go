package api

import (
	"testing"

	"github.com/pinacle/pinacle-node/internal/deptest"
)

// TestImportRule keeps the API Linux-free: the macOS host CLI builds with
// it, so it may import only the small portable packages of its wire
// types, never the node's implementation (pods, store, oci, supervisor,
// netns, portfwd, rootfs, imagestore) or bbolt.
func TestImportRule(t *testing.T) {
	deptest.Check(t, ".", deptest.Rule{
		GOOS:    "darwin",
		Allowed: []string{"internal/api", "internal/cli", "internal/errdefs", "internal/lifecycle", "podspec"},
		Denied:  []string{"go.etcd.io/bbolt", "github.com/vishvananda", "github.com/containernetworking", "golang.org/x/sys/unix"},
	})
}
