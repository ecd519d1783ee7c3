package oci

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// The container's own stdio can be a host pty (pinacle-node run -it).
func TestCreateWithPty(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("tty")
	b := e.bundle(id, func(o *SpecOptions) { o.Terminal = true }, "/bin/sh", "-c", "[ -t 0 ] && echo isatty; stty size")
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: 21, Cols: 55})
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, ptmx); close(done) }()
	ex, err := e.rt.Run(ctx, id, b, CreateOpts{Stdin: tty, Stdout: tty, Stderr: tty})
	tty.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pty output did not end")
	}
	if ex.Code != 0 || !strings.Contains(buf.String(), "isatty\r\n") || !strings.Contains(buf.String(), "21 55") {
		t.Errorf("exit %+v output %q", ex, buf.String())
	}
}
