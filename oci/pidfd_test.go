package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func openPidfd(t *testing.T, pid int) int {
	t.Helper()
	pfd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	return pfd
}

func threads(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// endsOnKill checks that a wait (its result on done) lasts while the
// process runs and ends, without error, once kill has killed it.
func endsOnKill(t *testing.T, done <-chan error, kill func() error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("returned while the process runs: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no return after the process exited")
	}
}

// TestWaitPidfd: the wait ends when the process exits, or when ctx does,
// and many waits do not hold a thread each.
func TestWaitPidfd(t *testing.T) {
	t.Run("exit", func(t *testing.T) {
		cmd := startSleep(t)
		done := make(chan error, 1)
		go func() { done <- waitPidfd(context.Background(), openPidfd(t, cmd.Process.Pid)) }()
		endsOnKill(t, done, cmd.Process.Kill)
	})
	t.Run("already-exited", func(t *testing.T) {
		cmd := startSleep(t)
		pfd := openPidfd(t, cmd.Process.Pid)
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if err := waitPidfd(context.Background(), pfd); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ctx", func(t *testing.T) {
		cmd := startSleep(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- waitPidfd(ctx, openPidfd(t, cmd.Process.Pid)) }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("cancel did not end the wait")
		}
	})
	t.Run("no-thread-each", func(t *testing.T) {
		const n = 40
		before := threads(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, n)
		for range n {
			pfd := openPidfd(t, startSleep(t).Process.Pid)
			go func() { done <- waitPidfd(ctx, pfd) }()
		}
		time.Sleep(300 * time.Millisecond) // let the waiters park
		if got := threads(t) - before; got >= n/2 {
			t.Errorf("%d waits added %d threads; a wait in the netpoller holds none", n, got)
		}
		cancel()
		for range n {
			<-done
		}
	})
}

// fakeSandbox starts a process whose argv[0] is runsc-sandbox, the way
// Wait recognizes a sandbox it adopted, and returns its pid.
func fakeSandbox(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("bash", "-c", `(exec -a runsc-sandbox sleep 1000) >/dev/null 2>&1 & echo $!`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(string(out), &pid); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		// Orphaned, it is ours if this process is a subreaper (other
		// tests make it one): reap it, or it is a zombie child.
		if ppid(pid) == os.Getpid() {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, 0, nil)
		}
	})
	// $! is the subshell, which execs sleep a moment later.
	for deadline := time.Now().Add(10 * time.Second); argv0(pid) != "runsc-sandbox"; {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: argv[0] %q, never runsc-sandbox", pid, argv0(pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return pid
}

// TestWaitForeign: an adopted sandbox (not our child) is waited through its
// pidfd, with no runsc process; a pid that is not a sandbox any more counts
// as exited.
func TestWaitForeign(t *testing.T) {
	t.Run("exit", func(t *testing.T) {
		pid := fakeSandbox(t)
		done := make(chan error, 1)
		go func() {
			handled, err := waitForeign(context.Background(), pid)
			if !handled {
				err = errors.New("not handled")
			}
			done <- err
		}()
		endsOnKill(t, done, func() error { return unix.Kill(pid, unix.SIGKILL) })
	})
	t.Run("not-a-sandbox", func(t *testing.T) {
		cmd := startSleep(t)
		if handled, err := waitForeign(context.Background(), cmd.Process.Pid); !handled || err != nil {
			t.Fatalf("a plain sleep: handled %v, err %v; want it read as the sandbox gone", handled, err)
		}
	})
	t.Run("gone", func(t *testing.T) {
		cmd := exec.Command("true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		if handled, err := waitForeign(context.Background(), cmd.Process.Pid); !handled || err != nil {
			t.Fatalf("a reaped pid: handled %v, err %v", handled, err)
		}
	})
	t.Run("ctx", func(t *testing.T) {
		pid := fakeSandbox(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := waitForeign(ctx, pid); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}
