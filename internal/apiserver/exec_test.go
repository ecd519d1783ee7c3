package apiserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecPipes(t *testing.T) {
	ts := startServer(t)
	mustCreate(t, ts.client, "web")
	var stdout, stderr bytes.Buffer
	code, err := ts.client.ExecStream(context.Background(), "web",
		api.ExecOptions{Args: []string{"/bin/sh", "-c", `read line; echo "out:$line:$FOO"; echo err >&2; cat; exit 7`}, Env: []string{"FOO=bar"}},
		strings.NewReader("hello\nrest of stdin\n"), &stdout, &stderr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Fatalf("exit code = %d, want 7", code)
	}
	if stdout.String() != "out:hello:bar\nrest of stdin\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}

	// No stdin: the process reads EOF at once, not a hang.
	stdout.Reset()
	code, err = ts.client.ExecStream(context.Background(), "web", api.ExecOptions{Args: []string{"/bin/sh", "-c", "cat; echo done"}}, nil, &stdout, nil, nil)
	if err != nil || code != 0 || stdout.String() != "done\n" {
		t.Fatalf("no stdin: %d %q %v", code, stdout.String(), err)
	}

	// Large output arrives whole before the exit code.
	stdout.Reset()
	code, err = ts.client.ExecStream(context.Background(), "web", api.ExecOptions{Args: []string{"/bin/sh", "-c", "head -c 3000000 /dev/zero"}}, nil, &stdout, nil, nil)
	if err != nil || code != 0 || stdout.Len() != 3000000 {
		t.Fatalf("large output: %d bytes, code %d, %v", stdout.Len(), code, err)
	}

	// Exec through the api.Service method, with files.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); res <- string(b) }()
	code, err = ts.client.Exec(context.Background(), "web", execRequestWithStdout([]string{"/bin/echo", "via", "files"}, w))
	w.Close()
	if err != nil || code != 0 {
		t.Fatalf("Exec: %d %v", code, err)
	}
	if got := <-res; got != "via files\n" {
		t.Fatalf("Exec stdout = %q", got)
	}
}

func TestExecErrors(t *testing.T) {
	ts := startServer(t)
	p := mustCreate(t, ts.client, "web")
	ctx := context.Background()
	// Before the upgrade: plain API errors.
	_, err := ts.client.ExecStream(ctx, "missing", api.ExecOptions{Args: []string{"true"}}, nil, nil, nil, nil)
	if !errdefs.IsNotFound(err) {
		t.Fatalf("exec in a missing pod: %v", err)
	}
	_, err = ts.client.ExecStream(ctx, "web", api.ExecOptions{}, nil, nil, nil, nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "args") {
		t.Fatalf("exec without args: %v", err)
	}
	_, err = ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"true"}, Env: []string{"NOEQUALS"}}, nil, nil, nil, nil)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("exec with bad env: %v", err)
	}
	// After the upgrade: an error frame, classified.
	if _, err := ts.client.Stop(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	_, err = ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"true"}}, nil, nil, nil, nil)
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "is stopped") {
		t.Fatalf("exec in a stopped pod: %v", err)
	}
	// A plain POST without the upgrade headers is refused.
	st, eb := ts.rawDo(t, "POST", "/v1/pods/web/exec", `{"args":["true"]}`)
	if st != 400 || !strings.Contains(eb.Message, api.ExecProtocol) {
		t.Fatalf("exec without upgrade: %d %+v", st, eb)
	}
}

func TestExecClientDisconnectKillsProcess(t *testing.T) {
	for _, tty := range []bool{false, true} {
		name := "pipes"
		if tty {
			name = "tty"
		}
		t.Run(name, func(t *testing.T) {
			ts := startServer(t)
			mustCreate(t, ts.client, "web")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &syncBuffer{}
			pr, pw := io.Pipe()
			defer pw.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"/bin/sh", "-c", "echo started; exec sleep 1000"}, Tty: tty}, pr, out, out, nil)
				errc <- err
			}()
			var pid int
			select {
			case pid = <-ts.fake.execPid:
			case <-time.After(10 * time.Second):
				t.Fatal("process did not start")
			}
			waitFor(t, "output", func() bool { return strings.Contains(out.String(), "started") })
			drain(ts.fake.streamEnded)
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("ExecStream after cancel: %v", err)
			}
			// The service's Exec returns because its ctx ended and the process was killed.
			if err := waitEnded(t, ts.fake.streamEnded); !errors.Is(err, context.Canceled) {
				t.Fatalf("service Exec ended with %v, want context canceled", err)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Fatalf("process %d still exists after the client went away (kill 0: %v)", pid, err)
			}
		})
	}
}

func TestExecTTY(t *testing.T) {
	ts := startServer(t)
	mustCreate(t, ts.client, "web")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	pr, pw := io.Pipe()
	defer pw.Close()
	resize := make(chan api.Size, 1)
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"/bin/sh", "-i"}, Tty: true, Size: api.Size{Cols: 80, Rows: 24}}, pr, out, nil, resize)
		res <- result{code, err}
	}()
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s); err != nil {
			t.Fatal(err)
		}
	}
	// The initial size applies from the start.
	send("stty size\n")
	waitFor(t, "initial size", func() bool { return strings.Contains(out.String(), "24 80\r\n") })
	resize <- api.Size{Cols: 132, Rows: 50}
	// The client sends resizes and input from two goroutines, so a line
	// typed right after a resize may reach the shell first (it did, in a
	// CI run): ask until the new size shows, every 100 ms.
	last := time.Time{}
	waitFor(t, "resized", func() bool {
		if time.Since(last) > 100*time.Millisecond {
			send("stty size\n")
			last = time.Now()
		}
		return strings.Contains(out.String(), "50 132\r\n")
	})

	// ^C reaches the foreground process as SIGINT through the line discipline.
	// ^C at a running foreground command: the line discipline sends
	// SIGINT to the foreground process group. (The outputs are spelled
	// differently from the echoed input lines.)
	send("sh -c 'trap \"echo GOT-$((60+9)); exit 3\" INT; echo READY-$((1+1)); while :; do sleep 0.05; done'; echo STATUS-$?-END\n")
	waitFor(t, "trap set", func() bool { return strings.Contains(out.String(), "READY-2") })
	if strings.Contains(out.String(), "GOT-69") {
		t.Fatal("trap fired before ^C")
	}
	send("\x03")
	waitFor(t, "SIGINT", func() bool { return strings.Contains(out.String(), "GOT-69") })
	waitFor(t, "child exit status", func() bool { return strings.Contains(out.String(), "STATUS-3-END") })

	send("exit 5\n")
	select {
	case r := <-res:
		if r.err != nil || r.code != 5 {
			t.Fatalf("tty exec = %d, %v", r.code, r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("tty exec did not end; output %q", out.String())
	}
}
