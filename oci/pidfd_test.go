package oci

import (
	"context"
	"errors"
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

// TestWaitPidfd: the wait ends when the process exits, or when ctx does,
// and many waits do not hold a thread each.
func TestWaitPidfd(t *testing.T) {
	t.Run("exit", func(t *testing.T) {
		cmd := startSleep(t)
		done := make(chan error, 1)
		go func() { done <- waitPidfd(context.Background(), openPidfd(t, cmd.Process.Pid)) }()
		select {
		case err := <-done:
			t.Fatalf("returned while the process runs: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if err := cmd.Process.Kill(); err != nil {
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
