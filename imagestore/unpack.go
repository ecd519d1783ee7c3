package imagestore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Names with which OCI layers mark deletions (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// overlayOpaqueXattr marks a directory whose lower-layer contents are hidden.
const overlayOpaqueXattr = "trusted.overlay.opaque"

// unpackLimits caps what one layer may make us write.
type unpackLimits struct {
	maxEntry int64 // bytes in one regular file
	maxLayer int64 // uncompressed tar bytes in the layer
}

// unpackStats describes what an unpack wrote.
type unpackStats struct {
	Size    int64 // bytes of regular file content
	Entries int
}

// unpacker extracts one tar stream into dir. It is the security boundary of
// the store: every path is resolved with openat2(RESOLVE_IN_ROOT) relative to
// a descriptor of dir, so no name, symlink or hardlink in the layer can make
// it create, modify or link anything outside dir.
type unpacker struct {
	root   int // O_PATH descriptor of the layer directory
	lim    unpackLimits
	chown  bool
	buf    []byte
	dirs   []dirMeta // directory metadata is applied last: children change mtimes
	cached struct {
		path string
		fd   int
	}
	stats unpackStats
}

type dirMeta struct {
	path string
	hdr  *tar.Header
}

// entryError is the error for a hostile or malformed entry: it names the
// entry and is an invalid-argument error.
func entryError(name, format string, a ...any) error {
	return fmt.Errorf("layer entry %q: %s: %w", name, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
}

var errLayerTooLarge = errors.New("layer exceeds the size limit")

// contentError classifies a failure to decode a layer stream: the
// content's fault (invalid argument) unless reading the source failed or
// the context ended.
func contentError(what string, err error) error {
	var se *sourceError
	if errors.As(err, &se) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %v: %w", what, err, errdefs.ErrInvalidArgument)
}

// limitedReader counts bytes and fails once more than max were read.
type limitedReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		return n, errLayerTooLarge
	}
	return n, err
}

// unpackTar extracts the uncompressed tar stream r into dir, which must exist
// and be empty, converting whiteouts into overlayfs form. It consumes r up
// to the end-of-archive marker only; the caller drains the rest.
func unpackTar(ctx context.Context, r io.Reader, dir string, lim unpackLimits) (unpackStats, error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return unpackStats{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	u := &unpacker{root: root, lim: lim, chown: os.Geteuid() == 0, buf: make([]byte, 1<<20)}
	u.cached.fd = -1
	defer u.close()

	lr := &limitedReader{r: r, max: lim.maxLayer}
	tr := tar.NewReader(lr)
	for {
		if err := ctx.Err(); err != nil {
			return u.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errLayerTooLarge) {
				return u.stats, fmt.Errorf("layer larger than %d bytes: %w", lim.maxLayer, errdefs.ErrInvalidArgument)
			}
			return u.stats, contentError("reading layer tar", err)
		}
		if err := u.entry(tr, hdr); err != nil {
			if errors.Is(err, errLayerTooLarge) {
				return u.stats, entryError(hdr.Name, "layer larger than %d bytes", lim.maxLayer)
			}
			return u.stats, err
		}
		u.stats.Entries++
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		if err := u.dirMetadata(u.dirs[i]); err != nil {
			return u.stats, err
		}
	}
	return u.stats, nil
}

func (u *unpacker) close() {
	u.dropCache()
	unix.Close(u.root)
}

func (u *unpacker) dropCache() {
	if u.cached.fd >= 0 {
		unix.Close(u.cached.fd)
	}
	u.cached.fd, u.cached.path = -1, ""
}

// cleanName validates an entry name and returns it relative to the layer
// root ("." for the root itself). Absolute names and ".." are rejected
// rather than rewritten: a layer that contains them is not one we trust.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("NUL in name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`".." in name`)
		}
	}
	return path.Clean(name), nil
}

func (u *unpacker) entry(tr *tar.Reader, hdr *tar.Header) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return entryError(hdr.Name, "%v", err)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	base := path.Base(name)
	switch {
	case base == whiteoutOpaque:
		return u.opaque(hdr.Name, path.Dir(name))
	case strings.HasPrefix(base, whiteoutMeta):
		return nil // other aufs metadata (.wh..wh.plnk and friends): not content
	case strings.HasPrefix(base, whiteoutPrefix):
		target := base[len(whiteoutPrefix):]
		if target == "" || target == "." || target == ".." {
			return entryError(hdr.Name, "whiteout of nothing")
		}
		return u.whiteout(hdr.Name, path.Join(path.Dir(name), target))
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return entryError(hdr.Name, "layer root must be a directory")
		}
		u.dirs = append(u.dirs, dirMeta{".", hdr})
		return nil
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(hdr, name)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		return u.regular(tr, hdr, name)
	case tar.TypeSymlink:
		return u.symlink(hdr, name)
	case tar.TypeLink:
		return u.hardlink(hdr, name)
	case tar.TypeFifo:
		return u.fifo(hdr, name)
	case tar.TypeChar, tar.TypeBlock:
		// Only whiteouts we create ourselves may be devices: a device node in
		// a rootfs would hand the sandbox whatever the host's node points at.
		return entryError(hdr.Name, "device nodes are not allowed")
	default:
		return entryError(hdr.Name, "unsupported tar type %q", string(hdr.Typeflag))
	}
}
