package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ReleaseRoot undoes what runsc leaves in a --root directory once no
// container uses it: runsc pins an empty "null" network namespace for its
// gofers by bind-mounting it at <root>/null-netns and never unmounts it.
// Call it before removing a runsc root (tests, node uninstall); it is
// idempotent. It does not delete containers.
func ReleaseRoot(root string) error {
	p := filepath.Join(root, "null-netns")
	// Concurrent cold starts may stack several mounts there.
	for i := 0; i < 64; i++ {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				break // not a mount point (any more)
			}
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}
