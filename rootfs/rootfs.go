package rootfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Layout of a pod directory (names are part of the on-disk format):
//
//	podDir/rootfs/        the merged overlay (the sandbox's root)
//	podDir/upper, work/   writable layer, uncapped
//	podDir/storage.img    sparse ext4 image, when capped
//	podDir/storage/       its mount point, holding upper/ and work/
const (
	mergedDir   = "rootfs"
	storageImg  = "storage.img"
	storageDir  = "storage"
	upperDir    = "upper"
	workDir     = "work"
	minStorage  = 16 << 20
	mkfsProgram = "mkfs.ext4"
)

// Options for Mount.
type Options struct {
	// StorageBytes caps the writable layer (0: uncapped, on the host fs).
	// The cap is fixed when the image is first made; a later Mount reuses
	// the image, so the pod's writes persist.
	StorageBytes int64
	// Spares, when set, supplies a ready-made storage image instead of
	// making one, and is refilled in the background.
	Spares *Spares
}

// Rootfs is a mounted pod root filesystem.
type Rootfs struct {
	Path  string // merged view: the sandbox's root.path
	Upper string // the pod's writes
	Work  string
	// Storage is the mount point of the capped storage, "" when uncapped.
	Storage string
	podDir  string
}

// Mount assembles podDir/rootfs from lowerDirs (lowest first) and the
// pod's writable layer. It copies nothing, so its cost does not depend on
// image size. Mounting an already mounted pod is ErrAlreadyExists.
func Mount(ctx context.Context, lowerDirs []string, podDir string, o Options) (_ *Rootfs, retErr error) {
	if len(lowerDirs) == 0 {
		return nil, fmt.Errorf("rootfs: lowerDirs: empty: %w", errdefs.ErrInvalidArgument)
	}
	for i, l := range lowerDirs {
		if !filepath.IsAbs(l) {
			return nil, fmt.Errorf("rootfs: lowerDirs[%d] %q: must be absolute: %w", i, l, errdefs.ErrInvalidArgument)
		}
		if st, err := os.Stat(l); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("rootfs: lowerDirs[%d] %q: not a directory: %w", i, l, errdefs.ErrInvalidArgument)
		}
	}
	if !filepath.IsAbs(podDir) {
		return nil, fmt.Errorf("rootfs: podDir %q: must be absolute: %w", podDir, errdefs.ErrInvalidArgument)
	}
	if o.StorageBytes < 0 || (o.StorageBytes > 0 && o.StorageBytes < minStorage) {
		return nil, fmt.Errorf("rootfs: storageBytes: must be 0 (uncapped) or at least %d, got %d: %w", minStorage, o.StorageBytes, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &Rootfs{Path: filepath.Join(podDir, mergedDir), podDir: podDir}
	if mounted, err := IsMountPoint(r.Path); err != nil {
		return nil, err
	} else if mounted {
		return nil, fmt.Errorf("rootfs %s: already mounted: %w", r.Path, errdefs.ErrAlreadyExists)
	}
	if err := os.MkdirAll(r.Path, 0o755); err != nil {
		return nil, err
	}
	// On failure undo what this call mounted, never more.
	defer func() {
		if retErr != nil {
			_ = unmountAll(r.Path)
			if r.Storage != "" {
				_ = unmountAll(r.Storage)
			}
		}
	}()
	base := podDir
	if o.StorageBytes > 0 {
		r.Storage = filepath.Join(podDir, storageDir)
		if err := mountStorage(ctx, podDir, o.StorageBytes, o.Spares); err != nil {
			r.Storage = ""
			return nil, err
		}
		base = r.Storage
	}
	r.Upper, r.Work = filepath.Join(base, upperDir), filepath.Join(base, workDir)
	for _, d := range []string{r.Upper, r.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := mountOverlay(lowerDirs, r.Upper, r.Work, r.Path); err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", podDir, err)
	}
	return r, nil
}

// mountStorage makes (once) and mounts the capped storage image.
func mountStorage(ctx context.Context, podDir string, size int64, spares *Spares) error {
	img := filepath.Join(podDir, storageImg)
	mnt := filepath.Join(podDir, storageDir)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if mounted, err := IsMountPoint(mnt); err != nil {
		return err
	} else if mounted {
		return nil // left mounted by an earlier Mount whose overlay is gone
	}
	if _, err := os.Stat(img); errors.Is(err, fs.ErrNotExist) {
		if spares == nil || !spares.take(size, img) {
			if err := MakeStorageImage(ctx, img, size); err != nil {
				return err
			}
		}
		if spares != nil {
			spares.refill(size)
		}
	} else if err != nil {
		return err
	}
	dev, err := attachLoop(img)
	if err != nil {
		return fmt.Errorf("storage %s: %w", img, err)
	}
	// Closing dev after the mount hands its lifetime to the mount:
	// autoclear frees the loop device when the filesystem is unmounted.
	defer dev.Close()
	if err := unix.Mount(dev.Name(), mnt, "ext4", unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return fmt.Errorf("mount %s (%s) at %s: %w", img, dev.Name(), mnt, err)
	}
	return nil
}

// MakeStorageImage creates a sparse ext4 image of size bytes at path. The
// journal is kept (a pod's writes must survive a host crash) but
// initialised lazily; no blocks are reserved for root.
func MakeStorageImage(ctx context.Context, path string, size int64) (retErr error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("storage image %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, mkfsProgram, "-q", "-F", "-m", "0",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", "-L", "pinacle", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, out)
	}
	// Renaming last means a crash mid-mkfs never leaves a half-made image
	// that a later Mount would trust.
	return os.Rename(tmp, path)
}

// Unmount unmounts the pod's rootfs and then its storage (freeing the loop
// device). Already unmounted is success.
func Unmount(ctx context.Context, podDir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := unmountAll(filepath.Join(podDir, mergedDir)); err != nil {
		return err
	}
	return unmountAll(filepath.Join(podDir, storageDir))
}

// Unmount unmounts r; see the package function.
func (r *Rootfs) Unmount(ctx context.Context) error { return Unmount(ctx, r.podDir) }

// Remove unmounts and deletes everything Mount made in podDir (the
// writable layer and the storage image). It refuses to delete anything
// while a mount remains, and leaves podDir itself and other files in it.
func Remove(ctx context.Context, podDir string) error {
	if err := Unmount(ctx, podDir); err != nil {
		return err
	}
	for _, d := range []string{mergedDir, storageDir} {
		if m, err := IsMountPoint(filepath.Join(podDir, d)); err != nil || m {
			return fmt.Errorf("rootfs %s: %s still mounted: %w", podDir, d, errdefs.ErrConflict)
		}
	}
	for _, p := range []string{mergedDir, storageDir, upperDir, workDir, storageImg, storageImg + ".tmp"} {
		if err := os.RemoveAll(filepath.Join(podDir, p)); err != nil {
			return fmt.Errorf("rootfs %s: %w", podDir, err)
		}
	}
	return nil
}

// LoopDevices returns the loop devices whose backing file is under dir
// (from /sys/block/loop*/loop/backing_file); for leak checks.
func LoopDevices(dir string) []string {
	var out []string
	ents, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range ents {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := string(b)
		if len(f) > 0 && f[len(f)-1] == '\n' {
			f = f[:len(f)-1]
		}
		if rel, err := filepath.Rel(dir, f); err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../") {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(p)))+"="+f)
		}
	}
	return out
}
