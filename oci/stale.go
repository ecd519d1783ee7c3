package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/internal/procfs"
)

// KillStale SIGKILLs the runsc invocations for container id that an
// earlier process of this node left running: a daemon killed in the
// middle of `runsc run` or `restore` leaves that runsc going, and if it
// finished after recovery had undone the pod, it would start a sandbox (and
// an init writing a status file) behind the node's back. The sandbox and
// gofer processes themselves (runsc-sandbox, runsc-gofer) are left to
// Delete when runsc has the container's state; without it (a runsc killed
// before it wrote the state) they are killed here too, and runsc's lock
// file removed. It returns once the processes are gone, or ctx ends.
// Callers hold the pod's lock: no runsc of this process runs for id.
func (r *runsc) KillStale(ctx context.Context, id string) error {
	pids := r.staleInvocations(id, false)
	if err := r.killAndWait(ctx, id, pids); err != nil {
		return err
	}
	if r.known(id) {
		return nil // runsc knows the sandbox: Delete stops it and its gofer
	}
	// A runsc killed before it wrote the container's state leaves its
	// sandbox and gofer (in a session of their own) that no runsc command
	// can find again: only their command lines name the pod. It leaves
	// its lock file too, which nothing else would remove.
	if err := r.killAndWait(ctx, id, r.staleInvocations(id, true)); err != nil {
		return err
	}
	return r.removeLockFiles(id)
}

// removeLockFiles removes the lock files runsc left for id without a
// state file (see known); the caller has made sure no runsc runs for id.
func (r *runsc) removeLockFiles(id string) error {
	locks, err := filepath.Glob(filepath.Join(r.root, globEscape(id)+"_sandbox:*.lock"))
	if err != nil {
		return err
	}
	for _, l := range locks {
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stale runsc lock of %s: %w", id, err)
		}
	}
	return nil
}

// killAndWait SIGKILLs pids and waits until they are gone.
func (r *runsc) killAndWait(ctx context.Context, id string, pids []int) error {
	for _, pid := range pids {
		// runsc runs as the leader of its own process group (Setpgid):
		// the group takes whatever it had started with it.
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the group may be gone already
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		for procfs.Alive(pid) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("stale runsc %d for %s: %w", pid, id, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	if len(pids) > 0 {
		r.log.Info("killed runsc invocations left by an earlier node process", "id", id, "pids", pids)
	}
	return nil
}

// staleInvocations lists the runsc CLI processes for id under this
// runtime's root that this process did not start, or with sandboxes the
// sandbox and gofer processes that name id (last, or in a path such as
// the bundle's).
func (r *runsc) staleInvocations(id string, sandboxes bool) []int {
	all, err := procfs.PIDs()
	if err != nil {
		return nil
	}
	var pids []int
	for _, pid := range all {
		if theReaper.owns(pid) {
			continue
		}
		argv, err := procfs.Cmdline(pid)
		if err != nil || len(argv) < 2 || !slices.Contains(argv, "--root="+r.root) {
			continue
		}
		if sandboxes {
			if strings.HasPrefix(filepath.Base(argv[0]), "runsc-") && namesID(argv, id) {
				pids = append(pids, pid)
			}
			continue
		}
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		if !strings.HasPrefix(filepath.Base(argv[0]), "runsc-") && argv[len(argv)-1] == id && (argv[0] == r.binary || exe == r.binary) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// namesID says whether argv names container id: as its last argument, or
// as a path component of one (the bundle directory).
func namesID(argv []string, id string) bool {
	if argv[len(argv)-1] == id {
		return true
	}
	for _, a := range argv {
		if strings.Contains(a, "/"+id+"/") || strings.HasSuffix(a, "/"+id) {
			return true
		}
	}
	return false
}
