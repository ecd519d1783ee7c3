package apiserver

import (
	"context"
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestListenUnixModeAndDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "pinacle")
	path := filepath.Join(dir, "node.sock")
	// The current user's primary group stands in for "pinacle".
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := ListenUnix(path, WithSocketGroup(g.Name))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, want socket 0660", fi.Mode())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != g.Gid {
		t.Fatalf("socket group = %d, want %s", gid, g.Gid)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o755 {
		t.Fatalf("socket dir mode = %v, %v", di.Mode(), err)
	}
	// No temporary socket is left beside it.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("socket dir holds %d entries, want 1", len(entries))
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
	// A group that does not exist is skipped, not an error.
	ln, err = ListenUnix(path, WithSocketGroup("pinacle-no-such-group-x"))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := ListenUnix(path, WithSocketMode(os.ModeSetuid|0o600)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad mode accepted: %v", err)
	}
}

func TestListenUnixStaleAndLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.sock")

	// A stale socket: bound, then its listener gone without unlinking.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket missing: %v", err)
	}
	ln, err := ListenUnix(path, WithSocketGroup(""))
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	// A live socket is not stolen, and keeps working.
	_, err = ListenUnix(path, WithSocketGroup(""))
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "another pinacle-node") {
		t.Fatalf("second listener: %v, want conflict", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("first listener lost its socket: %v", err)
	}
	c.Close()

	// Anything else at the path is left alone.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(file); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("regular file at the socket path: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Fatal("regular file was touched")
	}
}

func TestClientUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nobody.sock")
	c := api.NewClient(path)
	_, err := c.List(context.Background())
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("err = %v, want unavailable", err)
	}
	want := "cannot reach pinacle-node at " + path + ": is `pinacle-node serve` running?"
	if err.Error() != want {
		t.Fatalf("message = %q, want %q", err.Error(), want)
	}
	if errdefs.Classify(err).ExitCode != errdefs.ExitUnavailable {
		t.Fatalf("exit code = %d", errdefs.Classify(err).ExitCode)
	}
	_, err = c.ExecStream(context.Background(), "web", api.ExecOptions{Args: []string{"true"}}, nil, nil, nil, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("exec err = %v, want unavailable", err)
	}
	// A canceled context is a cancel, not "daemon down".
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Run(ctx, newFake(), path, nil, func() { close(ready) }, WithVersion("9")) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	c := api.NewClient(path)
	defer c.Close()
	if v, err := c.Version(ctx); err != nil || v.Version != "9" {
		t.Fatalf("version = %+v, %v", v, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Run: %v", err)
	}
}
