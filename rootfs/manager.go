package rootfs

import (
	"context"
	"path/filepath"
)

// Manager mounts, unmounts and removes pod root filesystems. Host is the
// real one; the pod manager takes the interface so its tests can run
// without root or mounts. Implementations are safe for concurrent use on
// different pod directories, and Unmount and Remove of what is already
// gone succeed.
type Manager interface {
	// Mount assembles podDir/rootfs (see the package function Mount).
	Mount(ctx context.Context, lowerDirs []string, podDir string, o Options) (*Rootfs, error)
	// Unmount unmounts the pod's rootfs and storage; the files stay.
	Unmount(ctx context.Context, podDir string) error
	// Remove unmounts and deletes what Mount made in podDir.
	Remove(ctx context.Context, podDir string) error
	// Mounted reports whether the pod's rootfs is mounted.
	Mounted(podDir string) (bool, error)
}

// Host returns the Manager that mounts on this host with the package
// functions.
func Host() Manager { return host{} }

type host struct{}

var _ Manager = host{}

func (host) Mount(ctx context.Context, lowerDirs []string, podDir string, o Options) (*Rootfs, error) {
	return Mount(ctx, lowerDirs, podDir, o)
}

func (host) Unmount(ctx context.Context, podDir string) error { return Unmount(ctx, podDir) }

func (host) Remove(ctx context.Context, podDir string) error { return Remove(ctx, podDir) }

func (host) Mounted(podDir string) (bool, error) {
	return IsMountPoint(filepath.Join(podDir, mergedDir))
}
