package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/procfs"
	"golang.org/x/sys/unix"
)

// BecomeSubreaper makes this process a child subreaper
// (PR_SET_CHILD_SUBREAPER): the sandbox and gofer processes that `runsc
// create` and `runsc restore` leave behind become our children when runsc
// exits. That is what lets Wait learn the exit status of a sandbox whose
// init has already exited (runsc wait cannot: "exit status is
// unavailable"), and why a checkpointed sandbox does not linger as a zombie
// under init.
//
// Whoever calls it must reap: this package reaps the processes it knows
// (sandboxes and gofers it created) in Wait and Delete, and Reap collects
// the rest; a daemon should call Reap periodically. It never waits on
// arbitrary children, so os/exec users elsewhere in the process are safe.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// IsSubreaper reports whether this process is a child subreaper.
func IsSubreaper() bool {
	var v int
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafePointer(&v)), 0, 0, 0); err != nil {
		return false
	}
	return v != 0
}

// reaper tracks the runsc processes that were reparented to us.
type reaper struct {
	mu      sync.Mutex
	tracked map[int]bool            // pid -> awaiting reap
	own     map[int]bool            // runsc CLI processes os/exec is waiting for: never ours to reap
	exited  map[int]unix.WaitStatus // reaped statuses not yet consumed by Wait
}

var theReaper = &reaper{tracked: map[int]bool{}, own: map[int]bool{}, exited: map[int]unix.WaitStatus{}}

// Reap collects every exited sandbox or gofer process this package has
// seen; it never blocks.
func Reap() { theReaper.reap() }

// reapInterval is how often RunReaper collects exited processes: often
// enough that zombies do not pile up, rarely enough to cost nothing.
const reapInterval = time.Second

// RunReaper calls Reap periodically until ctx ends: what a daemon that
// called BecomeSubreaper runs in a goroutine of its own.
func RunReaper(ctx context.Context) {
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			Reap()
		}
	}
}

// start starts cmd with its pid marked as os/exec's own, atomically with
// respect to adopt and reap, so a fast-exiting runsc CLI is never reaped
// from under cmd.Wait. done must be called after cmd.Wait.
func (r *reaper) start(cmd interface{ Start() error }, pid func() int) (done func(), err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return func() {}, err
	}
	p := pid()
	r.own[p] = true
	return func() {
		r.mu.Lock()
		delete(r.own, p)
		r.mu.Unlock()
	}, nil
}

// owns says whether pid is a process this one started (and has not reaped).
func (r *reaper) owns(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own[pid]
}

// adopt tracks our children that runsc left behind: sandboxes and gofers
// (argv[0] runsc-sandbox, runsc-gofer) and the helpers of a detached exec
// (the runsc binary itself), and returns the newly tracked pids. It is
// called right after a runsc create, restore or exec --detach exits, when
// its orphans have just been reparented to us.
func (r *reaper) adopt(binary string) []int {
	self := os.Getpid()
	pids, err := procfs.PIDs()
	if err != nil {
		return nil
	}
	var found []int
	for _, pid := range pids {
		if ppid(pid) != self {
			continue
		}
		argv, err := procfs.Cmdline(pid)
		if err != nil {
			continue
		}
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		ours := exe == binary || (len(argv) > 0 && strings.HasPrefix(argv[0], "runsc-"))
		if len(argv) == 0 {
			// A zombie has no cmdline or exe left: a sandbox whose process
			// exited at once (`run --detach` of /bin/true) can be one by
			// now. Its comm survives: runsc re-executes /proc/self/exe for
			// the sandbox and gofer ("exe"), and runs itself for exec
			// helpers. Anything else (an iptables or CNI exec of the
			// caller's) is not ours to reap.
			c := comm(pid)
			ours = c == "exe" || c == filepath.Base(binary)
		}
		if !ours {
			continue
		}
		r.mu.Lock()
		if !r.own[pid] && !r.tracked[pid] {
			r.tracked[pid] = true
			found = append(found, pid)
		}
		r.mu.Unlock()
	}
	return found
}

// reapAll waits, up to d, until every pid in pids has been reaped (or is
// not our child).
func (r *reaper) reapAll(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		left := 0
		for _, p := range pids {
			if r.tracked[p] && !r.reapLocked(p) {
				left++
			}
		}
		r.mu.Unlock()
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// forget drops the stored statuses of pids nobody will ask for.
func (r *reaper) forget(pids []int) {
	r.mu.Lock()
	for _, p := range pids {
		delete(r.exited, p)
	}
	r.mu.Unlock()
}

func (r *reaper) track(pid int) {
	if pid <= 0 {
		return
	}
	r.mu.Lock()
	r.tracked[pid] = true
	r.mu.Unlock()
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid := range r.tracked {
		if !r.own[pid] {
			r.reapLocked(pid)
		}
	}
}

// reapLocked tries to reap pid without blocking; true when it is gone.
func (r *reaper) reapLocked(pid int) bool {
	if _, ok := r.exited[pid]; ok {
		return true
	}
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	switch {
	case err == nil && got == pid:
		delete(r.tracked, pid)
		r.exited[pid] = ws
		if len(r.exited) > 4096 { // gofers nobody asks for; keep memory bounded
			clear(r.exited)
		}
		return true
	case errors.Is(err, unix.ECHILD):
		delete(r.tracked, pid)
		return true
	}
	return false
}

// waitPid waits for our child pid to exit and returns its status.
// ok is false if pid is not (or no longer) our child and was not reaped by
// us, i.e. its status is unknowable here.
func (r *reaper) waitPid(ctx context.Context, pid int) (ws unix.WaitStatus, ok bool, err error) {
	if pid <= 0 {
		return 0, false, nil
	}
	if ppid(pid) != os.Getpid() {
		r.mu.Lock()
		ws, ok = r.exited[pid]
		delete(r.exited, pid)
		r.mu.Unlock()
		return ws, ok, nil
	}
	// A pidfd becomes readable when the process exits.
	if pfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK); err == nil {
		if err := waitPidfd(ctx, pfd); err != nil {
			return 0, false, fmt.Errorf("wait for pid %d: %w", pid, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tracked[pid] = true
	for !r.reapLocked(pid) {
		// pidfd_open failed (ESRCH races) or the zombie is not visible yet.
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			r.mu.Lock()
			return 0, false, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		r.mu.Lock()
	}
	ws, ok = r.exited[pid]
	delete(r.exited, pid)
	return ws, ok, nil
}

// waitForeign waits for a sandbox process that is not our child, through
// its pidfd; handled is false when pidfds are unavailable (the caller falls
// back to `runsc wait`). A pid that no longer names a runsc sandbox has
// exited already: its number is gone or reused.
func waitForeign(ctx context.Context, pid int) (handled bool, err error) {
	if pid <= 0 {
		return false, nil
	}
	pfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case errors.Is(err, unix.ESRCH):
		return true, nil
	case err != nil:
		return false, nil
	}
	// The pidfd pins the process: if argv[0] is runsc's sandbox now, the
	// pidfd is that sandbox's.
	if argv0(pid) != "runsc-sandbox" {
		unix.Close(pfd)
		return true, nil
	}
	return true, waitPidfd(ctx, pfd)
}

// waitPidfd waits until the process behind pfd (non-blocking; closed
// here) exits or ctx ends. The wait sits in Go's netpoller, not in a
// thread blocked in poll(2): a node watches every running sandbox this
// way, and 100 pods held 100 threads waking ten times a second each.
func waitPidfd(ctx context.Context, pfd int) error {
	f := os.NewFile(uintptr(pfd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// Any kernel with PIDFD_NONBLOCK (5.10) can epoll a pidfd (5.3), so
	// os.NewFile registered it with the poller.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("pidfd not pollable: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			perr = fmt.Errorf("poll pidfd: %w", err)
			return true
		}
		return n > 0
	})
	switch {
	case perr != nil:
		return perr
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}

// ppid returns pid's parent pid, or -1.
// comm returns the process name of pid ("" if unknown).
func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// argv0 returns pid's argv[0] ("" if unknown).
func argv0(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	a, _, _ := strings.Cut(string(b), "\x00")
	return a
}

func ppid(pid int) int {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return -1
	}
	return st.PPid
}
