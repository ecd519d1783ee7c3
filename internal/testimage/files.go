package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the mtime of every generated entry, so images are reproducible.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// File is one entry of a layer. Mode carries the permission bits plus
// fs.ModeDir, fs.ModeSymlink, fs.ModeNamedPipe, fs.ModeCharDevice|fs.ModeDevice
// and fs.ModeSetuid/Setgid/Sticky; a zero Mode means a 0644 regular file.
type File struct {
	Path     string
	Mode     fs.FileMode
	Data     []byte
	Link     string // symlink target, or hardlink target when Hardlink is set
	Hardlink bool
	Uid, Gid int
	Xattrs   map[string]string
	// Raw writes Path into the tar exactly as given (no cleaning), for
	// hostile-layer tests.
	Raw bool
}

// Reg is a regular file.
func Reg(p, data string, mode fs.FileMode) File {
	return File{Path: p, Data: []byte(data), Mode: mode}
}

// Dir is a directory.
func Dir(p string, mode fs.FileMode) File { return File{Path: p, Mode: fs.ModeDir | mode} }

// Symlink is a symbolic link p -> target.
func Symlink(p, target string) File {
	return File{Path: p, Mode: fs.ModeSymlink | 0o777, Link: target}
}

// Hardlink is a hard link p to the earlier entry target.
func Hardlink(p, target string) File { return File{Path: p, Link: target, Hardlink: true} }

// Whiteout deletes p (from lower layers) in OCI form: a ".wh.<name>" entry.
func Whiteout(p string) File {
	return File{Path: path.Join(path.Dir(p), ".wh."+path.Base(p))}
}

// Opaque hides everything lower layers have in dir: "dir/.wh..wh..opq".
func Opaque(dir string) File { return File{Path: path.Join(dir, ".wh..wh..opq")} }

// Tar writes files as an uncompressed tar stream.
func Tar(files ...File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{
			Name: f.Path, Uid: f.Uid, Gid: f.Gid, ModTime: Epoch, Format: tar.FormatPAX,
			Mode: int64(f.Mode.Perm()),
		}
		if !f.Raw {
			hdr.Name = path.Clean(f.Path)
		}
		if f.Mode&fs.ModeSetuid != 0 {
			hdr.Mode |= 0o4000
		}
		if f.Mode&fs.ModeSetgid != 0 {
			hdr.Mode |= 0o2000
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case f.Hardlink:
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, f.Link
		case f.Mode&fs.ModeDir != 0:
			hdr.Typeflag = tar.TypeDir
			if !f.Raw {
				hdr.Name += "/"
			}
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.Link
		case f.Mode&fs.ModeNamedPipe != 0:
			hdr.Typeflag = tar.TypeFifo
		case f.Mode&fs.ModeCharDevice != 0:
			hdr.Typeflag = tar.TypeChar
		case f.Mode&fs.ModeDevice != 0:
			hdr.Typeflag = tar.TypeBlock
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.Data))
			if f.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if len(f.Xattrs) > 0 {
			hdr.PAXRecords = map[string]string{}
			for k, v := range f.Xattrs {
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.Path, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Layer makes a gzip-compressed layer of files.
func Layer(files ...File) (v1.Layer, error) {
	b, err := Tar(files...)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}
