package supervisor

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// exitStatus is how a child ended.
type exitStatus struct {
	code   int // exit code, or 128+signal
	signal unix.Signal
	msg    string // set when the process could not be started at all
}

func (e exitStatus) err() string {
	if e.msg != "" {
		return e.msg
	}
	return e.String()
}

func (e exitStatus) String() string {
	if e.signal != 0 {
		return "killed by " + unix.SignalName(e.signal)
	}
	return "exit code " + strconv.Itoa(e.code)
}

func fromWaitStatus(ws unix.WaitStatus) exitStatus {
	if ws.Signaled() {
		return exitStatus{code: 128 + int(ws.Signal()), signal: ws.Signal()}
	}
	return exitStatus{code: ws.ExitStatus()}
}

// reaper owns waiting for children. Nothing else in the process may wait
// for them (no exec.Cmd.Wait): a reaper looping on wait4(-1) would steal
// their statuses. Starts and reaps take the same lock, so a child that
// exits before its pid is registered is still dispatched to its waiter.
//
// In reapAll mode (PID 1 or a child subreaper) it waits for any pid and
// drops statuses of orphans it did not start. Otherwise it waits only for
// the pids it started, so an in-process supervisor (tests, or a library
// user) does not steal exit statuses from the rest of its process.
type reaper struct {
	reapAll bool
	log     *slog.Logger

	mu      sync.Mutex
	waiters map[int]chan exitStatus
	orphans int // orphans reaped, for tests and the log
}

func newReaper(reapAll bool, log *slog.Logger) *reaper {
	return &reaper{reapAll: reapAll, log: log, waiters: make(map[int]chan exitStatus)}
}

// start runs fork (which must start exactly one child and return its pid)
// and registers the pid; the returned channel receives its exit status once.
func (r *reaper) start(fork func() (int, error)) (int, <-chan exitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan exitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// run reaps on every SIGCHLD until ctx is done.
func (r *reaper) run(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGCHLD)
	defer signal.Stop(sig)
	r.reap() // children that exited before Notify
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			r.reap()
		}
	}
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ws unix.WaitStatus
	if r.reapAll {
		for {
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				return
			}
			r.dispatch(pid, ws)
		}
	}
	for pid := range r.waiters {
		for {
			p, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if p == pid {
				r.dispatch(pid, ws)
			} else if err == unix.ECHILD {
				// Someone else reaped it (should not happen); do not leave
				// its waiter hanging forever.
				r.log.Warn("child reaped elsewhere", "pid", pid)
				r.dispatch(pid, 0)
			}
			break
		}
	}
}

func (r *reaper) dispatch(pid int, ws unix.WaitStatus) {
	if !ws.Exited() && !ws.Signaled() && ws != 0 {
		return // stopped/continued: not an exit
	}
	ch, ok := r.waiters[pid]
	if !ok {
		r.orphans++
		r.log.Debug("reaped orphan", "pid", pid, "status", fromWaitStatus(ws).String())
		return
	}
	delete(r.waiters, pid)
	ch <- fromWaitStatus(ws)
}
