package pods

import (
	"context"
	"errors"
	"fmt"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/rootfs"
)

// base is what the steps shared by pods and one-off runs (image, rootfs)
// work on.
type base struct {
	id     string // lease holder and sandbox ID
	dir    string // the pod's directory, holding its rootfs
	images imagestore.Store
	rootfs rootfs.Manager

	ref    string // image reference
	pinned string // the digest a restart must use ("" on the first start)
	noPull bool
	// pulling, when set, is called as a pull of ref begins: it returns
	// what sees the pull's progress and what is called when it ends.
	pulling func(ref string) (progress func(imagestore.Event), done func())
	ropts   rootfs.Options
	// keep leaves the writable layer on release (run --keep).
	keep bool

	img *imagestore.RootFS // set by the image step
	rfs *rootfs.Rootfs     // set by the rootfs step
}

// part is a unit the shared steps can work on.
type part interface{ common() *base }

func (b *base) common() *base { return b }

// imageStep finds the image, pulling it if allowed, and leases it to the
// holder so a gc keeps its layers; release drops the lease.
func imageStep[U part]() step[U] {
	return step[U]{
		name: "image",
		do: func(ctx context.Context, u U) error {
			b := u.common()
			img, err := findImage(ctx, b)
			if err != nil {
				return err
			}
			if _, err := b.images.AddLease(ctx, b.id, img.Image.Digest); err != nil {
				return fmt.Errorf("%s: lease: %w", b.ref, err)
			}
			b.img = img
			return nil
		},
		release: func(ctx context.Context, u U) error {
			b := u.common()
			return b.images.RemoveLease(ctx, b.id)
		},
	}
}

// findImage resolves the image in the store, pulling it when it is
// missing (never for a pinned digest: a restart uses exactly the image
// the pod was created with).
func findImage(ctx context.Context, b *base) (*imagestore.RootFS, error) {
	ref := b.ref
	if b.pinned != "" {
		ref = b.pinned
	}
	img, err := b.images.RootFS(ctx, ref)
	if errors.Is(err, errdefs.ErrNotFound) && !b.noPull && b.pinned == "" {
		var opts []imagestore.PullOption
		if b.pulling != nil {
			progress, done := b.pulling(ref)
			defer done()
			opts = append(opts, imagestore.WithProgress(progress))
		}
		if _, err = b.images.Pull(ctx, ref, opts...); err == nil {
			img, err = b.images.RootFS(ctx, ref)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return img, nil
}

// rootfsStep mounts the overlay (and the capped storage); undo unmounts
// it, release deletes the writable layer unless it is kept.
func rootfsStep[U part]() step[U] {
	return step[U]{
		name: "rootfs",
		do: func(ctx context.Context, u U) error {
			b := u.common()
			if b.rfs != nil {
				return nil // mounted already: a claimed warm sandbox's
			}
			rfs, err := b.rootfs.Mount(ctx, b.img.LayerDirs, b.dir, b.ropts)
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				// Left mounted by an interrupted operation: start from a
				// clean mount.
				if err := b.rootfs.Unmount(ctx, b.dir); err != nil {
					return err
				}
				rfs, err = b.rootfs.Mount(ctx, b.img.LayerDirs, b.dir, b.ropts)
			}
			if err != nil {
				return err
			}
			b.rfs = rfs
			return nil
		},
		undo: func(ctx context.Context, u U) error {
			b := u.common()
			return b.rootfs.Unmount(ctx, b.dir)
		},
		release: func(ctx context.Context, u U) error {
			b := u.common()
			if b.keep {
				return nil
			}
			return b.rootfs.Remove(ctx, b.dir)
		},
	}
}
