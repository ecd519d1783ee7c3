package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KillStale SIGKILLs the runsc invocations for container id that an
// earlier process of this node left running: a daemon killed in the
// middle of `runsc run` or `restore` leaves that runsc going, and if it
// finished after recovery had undone the pod, it would start a sandbox (and
// an init writing a status file) behind the node's back. The sandbox and
// gofer processes themselves (runsc-sandbox, runsc-gofer) are left to
// Delete. It returns once the invocations are gone, or ctx ends.
func (r *runsc) KillStale(ctx context.Context, id string) error {
	pids := r.staleInvocations(id)
	for _, pid := range pids {
		// runsc runs as the leader of its own process group (Setpgid):
		// the group takes whatever it had started with it.
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the group may be gone already
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pids {
		for alive(pid) {
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

// staleInvocations lists the runsc CLI processes (not sandboxes or gofers)
// for id under this runtime's root that this process did not start.
func (r *runsc) staleInvocations(id string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || theReaper.owns(pid) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(argv) < 2 || strings.HasPrefix(filepath.Base(argv[0]), "runsc-") || argv[len(argv)-1] != id {
			continue
		}
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		if (argv[0] == r.binary || exe == r.binary) && slices.Contains(argv, "--root="+r.root) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive says whether pid still runs (a zombie has finished).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which ends at the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
