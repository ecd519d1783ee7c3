package imagestore

// The unpacker's file system side: each entry kind made safely under the
// layer root (openat2 RESOLVE_IN_ROOT), its metadata, and overlay whiteouts.

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// openParent returns a descriptor of the directory that will contain name,
// creating missing directories. The descriptor belongs to the cache; callers
// must not close it.
func (u *unpacker) openParent(entry, name string) (int, error) {
	dir := path.Dir(name)
	if dir == "." {
		return u.root, nil
	}
	if u.cached.fd >= 0 && u.cached.path == dir {
		return u.cached.fd, nil
	}
	fd, err := u.ensureDir(entry, dir)
	if err != nil {
		return -1, err
	}
	u.dropCache()
	u.cached.fd, u.cached.path = fd, dir
	return fd, nil
}

// resolveHow keeps every lookup inside the layer: symlinks, absolute or
// relative, are resolved as if the layer directory were "/".
var resolveHow = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

func (u *unpacker) openIn(name string, flags uint64) (int, error) {
	for {
		fd, err := unix.Openat2(u.root, name, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: uint64(resolveHow)})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// ensureDir opens (O_PATH) the directory dir inside the layer, creating it
// and its parents as needed.
func (u *unpacker) ensureDir(entry, dir string) (int, error) {
	fd, err := u.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		return fd, nil
	}
	if err != unix.ENOENT {
		return -1, entryError(entry, "parent %q: %v", dir, err)
	}
	parent := u.root
	if p := path.Dir(dir); p != "." {
		pfd, err := u.ensureDir(entry, p)
		if err != nil {
			return -1, err
		}
		defer unix.Close(pfd)
		parent = pfd
	}
	if err := unix.Mkdirat(parent, path.Base(dir), 0o755); err != nil && err != unix.EEXIST {
		return -1, entryError(entry, "mkdir %q: %v", dir, err)
	}
	fd, err = u.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		// For example a dangling symlink in the path: we do not create
		// symlink targets on the layer's behalf.
		return -1, entryError(entry, "parent %q: %v", dir, err)
	}
	return fd, nil
}

// removeAt removes base in parent, recursively if it is a directory.
func (u *unpacker) removeAt(parent int, base string) error {
	err := unix.Unlinkat(parent, base, 0)
	if err == unix.EISDIR {
		// os.RemoveAll walks with openat(O_NOFOLLOW) and unlinkat, so
		// symlinks below base are removed, never followed.
		u.dropCache()
		return os.RemoveAll(fmt.Sprintf("/proc/self/fd/%d/%s", parent, base))
	}
	if err == unix.ENOENT {
		return nil
	}
	return err
}

func (u *unpacker) mkdir(hdr *tar.Header, name string) error {
	parent, err := u.openParent(hdr.Name, name)
	if err != nil {
		return err
	}
	base := path.Base(name)
	err = unix.Mkdirat(parent, base, 0o755)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return entryError(hdr.Name, "stat: %v", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := u.removeAt(parent, base); err != nil {
				return entryError(hdr.Name, "replace: %v", err)
			}
			err = unix.Mkdirat(parent, base, 0o755)
		} else {
			err = nil
		}
	}
	if err != nil {
		return entryError(hdr.Name, "mkdir: %v", err)
	}
	u.dirs = append(u.dirs, dirMeta{name, hdr})
	return nil
}

// create makes a new file with mk, replacing whatever was at base.
func (u *unpacker) create(hdr *tar.Header, parent int, base string, mk func() error) error {
	err := mk()
	if err == unix.EEXIST {
		if err := u.removeAt(parent, base); err != nil {
			return entryError(hdr.Name, "replace: %v", err)
		}
		err = mk()
	}
	if err != nil {
		return entryError(hdr.Name, "create: %v", err)
	}
	return nil
}

func (u *unpacker) regular(tr *tar.Reader, hdr *tar.Header, name string) error {
	if hdr.Size < 0 || (u.lim.maxEntry > 0 && hdr.Size > u.lim.maxEntry) {
		return entryError(hdr.Name, "size %d exceeds the per-entry limit %d", hdr.Size, u.lim.maxEntry)
	}
	parent, err := u.openParent(hdr.Name, name)
	if err != nil {
		return err
	}
	base := path.Base(name)
	var fd int
	err = u.create(hdr, parent, base, func() (err error) {
		fd, err = unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	n, err := io.CopyBuffer(onlyWriter{f}, tr, u.buf)
	if err != nil {
		var se *sourceError
		if errors.Is(err, errLayerTooLarge) || errors.As(err, &se) {
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
		return entryError(hdr.Name, "write: %v", err)
	}
	if n != hdr.Size {
		return entryError(hdr.Name, "short content: %d of %d bytes", n, hdr.Size)
	}
	u.stats.Size += n
	if err := u.fileMetadata(hdr, fd); err != nil {
		return err
	}
	return u.times(hdr, parent, base)
}

// onlyWriter hides ReadFrom so io.CopyBuffer uses our buffer instead of
// *os.File's splice/copy_file_range probing, which cannot apply to a tar reader.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// fileMetadata sets owner, mode (after chown, which clears setuid) and
// xattrs on an open file or directory.
func (u *unpacker) fileMetadata(hdr *tar.Header, fd int) error {
	if u.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return entryError(hdr.Name, "chown: %v", err)
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return entryError(hdr.Name, "chmod: %v", err)
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !xattrAllowed(attr) {
			continue
		}
		if err := unix.Fsetxattr(fd, attr, []byte(v), 0); err != nil && err != unix.ENOTSUP {
			return entryError(hdr.Name, "xattr %s: %v", attr, err)
		}
	}
	return nil
}

// xattrAllowed says which extended attributes a layer may set. trusted.*
// is excluded on purpose: trusted.overlay.* would let a layer steer the
// overlay mount (opaque, redirect, metacopy) in ways we did not intend.
func xattrAllowed(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability"
}

func (u *unpacker) times(hdr *tar.Header, parent int, base string) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(parent, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return entryError(hdr.Name, "utimes: %v", err)
	}
	return nil
}

// symlinkEscapes reports whether a relative symlink target at name climbs
// above the layer root lexically. Absolute targets are normal in images
// (/bin/sh -> /bin/busybox) and are interpreted inside the sandbox's root.
func symlinkEscapes(name, target string) bool {
	if strings.HasPrefix(target, "/") {
		return false
	}
	depth := strings.Count(path.Dir(name), "/") + 1
	if path.Dir(name) == "." {
		depth = 0
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func (u *unpacker) symlink(hdr *tar.Header, name string) error {
	if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return entryError(hdr.Name, "bad symlink target %q", hdr.Linkname)
	}
	if symlinkEscapes(name, hdr.Linkname) {
		return entryError(hdr.Name, "symlink target %q leads outside the layer", hdr.Linkname)
	}
	parent, err := u.openParent(hdr.Name, name)
	if err != nil {
		return err
	}
	base := path.Base(name)
	if err := u.create(hdr, parent, base, func() error { return unix.Symlinkat(hdr.Linkname, parent, base) }); err != nil {
		return err
	}
	if u.chown {
		if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return entryError(hdr.Name, "chown: %v", err)
		}
	}
	return u.times(hdr, parent, base)
}

func (u *unpacker) hardlink(hdr *tar.Header, name string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil || target == "." {
		return entryError(hdr.Name, "hardlink target %q leads outside the layer", hdr.Linkname)
	}
	// O_NOFOLLOW on the last component: a link to a symlink links the
	// symlink itself, as tar means it.
	tfd, err := u.openIn(target, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return entryError(hdr.Name, "hardlink target %q: %v", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstat(tfd, &st); err != nil {
		return entryError(hdr.Name, "hardlink target %q: %v", hdr.Linkname, err)
	}
	if m := st.Mode & unix.S_IFMT; m != unix.S_IFREG && m != unix.S_IFLNK && m != unix.S_IFIFO {
		return entryError(hdr.Name, "hardlink target %q is not a regular file", hdr.Linkname)
	}
	parent, err := u.openParent(hdr.Name, name)
	if err != nil {
		return err
	}
	base := path.Base(name)
	return u.create(hdr, parent, base, func() error {
		return unix.Linkat(tfd, "", parent, base, unix.AT_EMPTY_PATH)
	})
}

func (u *unpacker) fifo(hdr *tar.Header, name string) error {
	parent, err := u.openParent(hdr.Name, name)
	if err != nil {
		return err
	}
	base := path.Base(name)
	if err := u.create(hdr, parent, base, func() error {
		return unix.Mknodat(parent, base, unix.S_IFIFO|0o600, 0)
	}); err != nil {
		return err
	}
	if u.chown {
		if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return entryError(hdr.Name, "chown: %v", err)
		}
	}
	if err := unix.Fchmodat(parent, base, uint32(hdr.Mode&0o777), 0); err != nil {
		return entryError(hdr.Name, "chmod: %v", err)
	}
	return u.times(hdr, parent, base)
}

// whiteout turns ".wh.name" into the overlayfs form: a 0:0 character device.
func (u *unpacker) whiteout(entry, name string) error {
	parent, err := u.openParent(entry, name)
	if err != nil {
		return err
	}
	base := path.Base(name)
	hdr := &tar.Header{Name: entry}
	return u.create(hdr, parent, base, func() error {
		return unix.Mknodat(parent, base, unix.S_IFCHR, 0)
	})
}

// opaque marks dir so overlayfs hides lower-layer contents.
func (u *unpacker) opaque(entry, dir string) error {
	if dir != "." {
		fd, err := u.ensureDir(entry, dir)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	fd, err := u.openIn(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return entryError(entry, "opaque dir %q: %v", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
		return entryError(entry, "opaque dir %q: %v", dir, err)
	}
	return nil
}

// dirMetadata applies a directory's owner, mode, xattrs and times once all
// its children exist. The directory is reopened without following a final
// symlink: a later entry may have replaced it.
func (u *unpacker) dirMetadata(d dirMeta) error {
	fd, err := u.openIn(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
		return nil // replaced or removed by a later entry
	}
	if err != nil {
		return entryError(d.hdr.Name, "open: %v", err)
	}
	defer unix.Close(fd)
	if err := u.fileMetadata(d.hdr, fd); err != nil {
		return err
	}
	atime := d.hdr.AccessTime
	if atime.IsZero() {
		atime = d.hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(d.hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		// Older kernels lack AT_EMPTY_PATH for utimensat; fall back to the fd path.
		if err2 := unix.UtimesNano("/proc/self/fd/"+strconv.Itoa(fd), ts); err2 != nil {
			return entryError(d.hdr.Name, "utimes: %v", err)
		}
	}
	return nil
}
