package node

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// InitBinaryPath is where, under the data root, pods find the node's
// binary they bind-mount (`init svc`, `init sync` and the web terminal
// run from it).
func InitBinaryPath(dataRoot string) string { return filepath.Join(dataRoot, "bin", "pinacle-node") }

// PodInitPath is where, under the data root, pods find pinacle-init, the
// small binary that is their PID 1.
func PodInitPath(dataRoot string) string { return filepath.Join(dataRoot, "bin", "pinacle-init") }

// PodInitEnv names a pinacle-init binary other than the one beside the
// node's own executable.
const PodInitEnv = "PINACLE_INIT_BINARY"

// InstallInitBinary copies this (static) binary and pinacle-init (from
// $PINACLE_INIT_BINARY, else beside this executable) to the data root,
// where pods bind-mount them, and returns their paths. A new version goes
// in with a rename, so running pods keep the files they started with.
func InstallInitBinary(dataRoot string) (nodeBin, podInit string, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	src := os.Getenv(PodInitEnv)
	if src == "" {
		src = filepath.Join(filepath.Dir(self), "pinacle-init")
	}
	if _, err := os.Stat(src); err != nil {
		return "", "", fmt.Errorf("pods' init binary %s: %w (install pinacle-init beside pinacle-node, as `make build` puts both in bin/, or name it in $%s): %w",
			src, err, PodInitEnv, errdefs.ErrNotFound)
	}
	if nodeBin, err = installInitBinary(self, InitBinaryPath(dataRoot)); err != nil {
		return "", "", err
	}
	podInit, err = installInitBinary(src, PodInitPath(dataRoot))
	return nodeBin, podInit, err
}

func installInitBinary(self, dst string) (string, error) {
	if err := checkStatic(self); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if same, err := sameFile(self, dst); err != nil || same {
		return dst, err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	// Streamed rather than fileutil.WriteAtomic: the binary need not be
	// held in memory whole.
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	return dst, fileutil.SyncDir(filepath.Dir(dst))
}

// sameFile says whether b exists with a's contents: sizes first, then the
// bytes streamed, so a daemon start holds neither binary in memory.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err1 := fa.Stat()
	sb, err2 := fb.Stat()
	if err1 != nil || err2 != nil || sa.Size() != sb.Size() {
		return false, nil // unknown or different: copying again is safe
	}
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, _ := io.ReadFull(fb, bb[:na]) // a short or failed read shows as na != nb
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil { // EOF or short final read: both ended together
			return true, nil
		}
	}
}

// checkStatic refuses a dynamically linked binary: inside a pod's rootfs
// there is no loader for it, and init would fail with a bare ENOENT.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("init binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("init binary %s is dynamically linked; build it with CGO_ENABLED=0 (make build): %w", path, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
