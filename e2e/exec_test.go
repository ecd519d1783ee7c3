package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestNodeExecTTY drives `pod exec -it` from a real terminal (a pty this
// test owns): the size passes through and follows a resize, ^C interrupts
// the foreground command, and the exit code passes through.
func TestNodeExecTTY(t *testing.T) {
	d := startDaemon(t)
	if _, r := d.create(webSpec("tty", "")); r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nodeBin, "pod", "exec", "-it", "tty", "--", "sh")
	cmd.Env = append(os.Environ(), "PINACLE_SOCKET="+d.sock)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	expect := func(want string) {
		t.Helper()
		poll(t, 20*time.Second, "terminal to show "+want, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return strings.Contains(screen.String(), want)
		})
	}
	send := func(s string) {
		t.Helper()
		if _, err := ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("stty size; echo marker-$((6*7))\n")
	expect("30 100")
	expect("marker-42")
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	// The resize travels as SIGWINCH -> frame -> pty in the sandbox; ask until it shows.
	poll(t, 20*time.Second, "the new size inside", func() bool {
		send("stty size\n")
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(screen.String(), "40 120")
	})
	send("sleep 1000; echo slept-$((2+3))-through\n")
	// ^C only once the sleep runs: sent earlier, it would reach the shell
	// instead and the sleep would never be interrupted.
	poll(t, 20*time.Second, "the sleep running in the pod", func() bool {
		r := d.cli("pod", "exec", "tty", "--", "ps", "-o", "args")
		return r.code == 0 && strings.Contains(r.stdout, "sleep 1000")
	})
	send("\x03")
	send("echo after-$((1+1))-int\n")
	expect("after-2-int")
	mu.Lock()
	if strings.Contains(screen.String(), "slept-5-through") {
		t.Error("^C did not interrupt sleep")
	}
	mu.Unlock()
	send("exit 7\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Fatalf("exec -it exit: %v, want status 7", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("exec -it did not end after exit")
	}
}
