package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

const (
	// SocketMode is the socket's permission: owner and group only.
	SocketMode os.FileMode = 0o660
)

// ListenOption configures ListenUnix.
type ListenOption func(*listenConfig) error

type listenConfig struct {
	group string
	mode  os.FileMode
}

// WithSocketGroup sets the group that owns the socket (default
// "pinacle"); a group that does not exist is skipped, "" skips the chown.
func WithSocketGroup(name string) ListenOption {
	return func(c *listenConfig) error { c.group = name; return nil }
}

// WithSocketMode sets the socket's permission bits (default 0660).
func WithSocketMode(m os.FileMode) ListenOption {
	return func(c *listenConfig) error {
		if m&^os.ModePerm != 0 {
			return fmt.Errorf("socket mode %v: only permission bits allowed: %w", m, errdefs.ErrInvalidArgument)
		}
		c.mode = m
		return nil
	}
}

// ListenUnix listens on a unix socket at path with mode 0660, owned by
// group "pinacle" when that group exists. The directory is created 0755.
// A socket file left by a dead daemon is replaced; a socket someone is
// listening on is not (ErrConflict), nor is any other kind of file.
//
// The socket is created under a temporary name, given its mode and group,
// and renamed into place, so no client ever sees it with looser
// permissions. Closing the listener removes the socket if it is still ours.
func ListenUnix(path string, opts ...ListenOption) (net.Listener, error) {
	cfg := listenConfig{group: api.DefaultSocketGroup, mode: SocketMode}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if path == "" {
		return nil, fmt.Errorf("socket path: required: %w", errdefs.ErrInvalidArgument)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	gid := -1
	if cfg.group != "" {
		if g, err := user.LookupGroup(cfg.group); err == nil {
			if n, err := strconv.Atoi(g.Gid); err == nil {
				gid = n
			}
		}
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp) // our own leftover from a crashed start with the same pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The listener would unlink tmp on Close; we unlink path ourselves.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, cfg.mode); err != nil {
		return fail(fmt.Errorf("chmod socket: %w", err))
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("chown socket to group %s: %w", cfg.group, err))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	return &unixListener{UnixListener: ln, path: path, fi: fi}, nil
}

// removeStaleSocket removes path if it is a socket nobody listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("socket %s: exists and is not a socket: %w", path, errdefs.ErrAlreadyExists)
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(context.Background(), "unix", path)
	if err == nil {
		conn.Close()
		return fmt.Errorf("socket %s: another pinacle-node is listening on it: %w", path, errdefs.ErrConflict)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// EAGAIN (backlog full) or a timeout mean someone is there.
		return fmt.Errorf("socket %s: cannot tell whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// unixListener removes its socket on Close unless another server has
// replaced it meanwhile.
type unixListener struct {
	*net.UnixListener
	path string
	fi   os.FileInfo
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
			os.Remove(l.path)
		}
	})
	return err
}
