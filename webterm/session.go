package webterm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"github.com/pinacle/pinacle-node/internal/procfs"
	"golang.org/x/sys/unix"
)

const (
	// readLimit bounds one message from the page: a large paste arrives as
	// one message.
	readLimit = 1 << 20
	// drainTimeout bounds reading what the shell wrote before it exited;
	// a background job that keeps the pty open must not hold the close.
	drainTimeout = 250 * time.Millisecond
	// finalWriteTimeout bounds the exit frame and the close handshake.
	finalWriteTimeout = 5 * time.Second
	// inputQueue decouples reading the socket from writing the pty, so a
	// program that does not read its input does not stop pongs being read.
	inputQueue = 64
)

// session is one websocket and the shell behind it.
type session struct {
	cfg  *config
	host string
	c    *websocket.Conn
	log  *slog.Logger
}

// run starts the shell on a new pty and relays until the shell exits or
// the page goes away (or server ends: the server is shutting down).
//
// The errors it drops (`_ =`) are of control frames and closes sent to the
// page, and of signals and closes aimed at the shell and its pty, on the
// way out: each fails only when the page or the shell is already gone,
// which is the state the session is heading for anyway.
func (s *session) run(server context.Context, cols, rows int) {
	cmd := s.command()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		s.log.Warn("webterm: start shell", "shell", s.cfg.shell, "err", err)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(server), finalWriteTimeout)
		defer cancel()
		_ = s.control(wctx, Control{Type: TypeError, Message: "start shell: " + err.Error()})
		_ = s.c.Close(websocket.StatusInternalError, "start shell failed")
		return
	}
	pid := cmd.Process.Pid
	log := s.log.With("pid", pid)
	log.Info("webterm: session started", "shell", s.cfg.shell, "cols", cols, "rows", rows)

	waitc := make(chan *os.ProcessState, 1)
	go func() {
		_ = cmd.Wait() // a non-zero exit is an error here; the state says it all
		waitc <- cmd.ProcessState
	}()

	// The socket's I/O runs on its own context: cancelling the context of
	// a pending Read or Write closes the connection at once, and a server
	// that stops still wants to send a close frame.
	ctx, cancel := context.WithCancel(context.WithoutCancel(server))
	defer cancel()
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		s.pumpOutput(ctx, cancel, ptmx)
	}()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		s.pumpInput(ctx, cancel, ptmx)
	}()
	go s.keepalive(ctx, cancel)
	_ = s.control(ctx, Control{Type: TypeHello, Pid: pid, Shell: s.cfg.shell, Host: s.host})

	hangup := func() { s.hangup(log, pid, ptmx, waitc) }
	select {
	case st := <-waitc:
		s.shellExited(ctx, log, st, pid, ptmx, outDone)
	case <-ctx.Done():
		// The page went away: its tab closed, the network failed, or it
		// stopped answering pings.
		hangup()
		log.Info("webterm: session closed by peer")
	case <-server.Done():
		hangup()
		// Tell the page why, so it does not look like a network fault.
		_ = s.c.Close(websocket.StatusGoingAway, "server stopping")
		log.Info("webterm: session hung up, server stopping")
	}
	cancel()
	_ = ptmx.Close()
	_ = s.c.CloseNow()
	<-outDone
	<-inDone
}

// shellExited forwards what the shell wrote before it went (until its
// output drains or drainTimeout), tells the page how it ended and closes
// the socket. Errors are dropped as in run.
func (s *session) shellExited(ctx context.Context, log *slog.Logger, st *os.ProcessState, pid int, ptmx *os.File, outDone <-chan struct{}) {
	_ = ptmx.SetReadDeadline(time.Now().Add(drainTimeout))
	<-outDone
	code, sig := exitCode(st)
	log.Info("webterm: shell exited", "code", code, "signal", sig)
	wctx, wcancel := context.WithTimeout(ctx, finalWriteTimeout)
	_ = s.control(wctx, Control{Type: TypeExit, Code: &code, Signal: sig})
	wcancel()
	_ = s.c.Close(websocket.StatusNormalClosure, "exit "+strconv.Itoa(code))
	// Anything of the shell's left on the terminal is hung up with it.
	_ = ptmx.Close()
	_ = unix.Kill(-pid, unix.SIGHUP)
}

// hangup ends the shell the way closing a terminal window does: SIGHUP
// to its process group and the terminal hung up (which signals the
// foreground job), SIGKILL to the group after the grace period. Errors
// are dropped as in run.
func (s *session) hangup(log *slog.Logger, pid int, ptmx *os.File, waitc <-chan *os.ProcessState) {
	_ = unix.Kill(-pid, unix.SIGHUP)
	_ = ptmx.Close()
	t := time.NewTimer(s.cfg.hangupGrace)
	defer t.Stop()
	select {
	case <-waitc:
	case <-t.C:
		log.Info("webterm: shell ignored SIGHUP, killing its process group")
		_ = unix.Kill(-pid, unix.SIGKILL)
		<-waitc
	}
	endSession(pid, s.cfg.hangupGrace)
}

// endSession hangs up what is left of the shell's session (its sid is
// the shell's pid): a job in a process group of its own misses the
// terminal's hangup when the shell dies before handing it the terminal,
// and would outlive the closed tab. SIGKILL after grace.
func endSession(sid int, grace time.Duration) {
	if signalSession(sid, unix.SIGHUP) == 0 {
		return
	}
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if signalSession(sid, 0) == 0 {
			return
		}
	}
	signalSession(sid, unix.SIGKILL)
}

// signalSession sends sig to every live process of session sid and says
// how many there were (sig 0 only counts them).
func signalSession(sid int, sig unix.Signal) (n int) {
	pids, _ := procfs.PIDs() // unreadable: nothing to signal
	for _, pid := range pids {
		st, err := procfs.ReadStat(pid)
		if err != nil || st.State == 'Z' || st.Session != sid {
			continue // gone meanwhile, finished, or another session's
		}
		n++
		_ = unix.Kill(pid, sig) // gone meanwhile: nothing to do
	}
	return n
}

// command builds the shell: its own session and process group (pty.Start
// sets Setsid and the controlling terminal), the server's environment
// with TERM for xterm.js, the working directory.
func (s *session) command() *exec.Cmd {
	cmd := exec.Command(s.cfg.shell)
	if s.cfg.login {
		cmd.Args[0] = "-" + filepath.Base(s.cfg.shell)
	}
	cmd.Dir = s.cfg.dir
	env := make([]string, 0, len(s.cfg.env)+3)
	for _, kv := range s.cfg.env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "TERM", "COLORTERM", "SHELL":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "TERM=xterm-256color", "COLORTERM=truecolor", "SHELL="+s.cfg.shell)
	return cmd
}

// pumpOutput copies the pty to the page, one binary message per read.
func (s *session) pumpOutput(ctx context.Context, cancel context.CancelFunc, ptmx *os.File) {
	buf := make([]byte, 32<<10)
	for {
		n, err := ptmx.Read(buf)
		if n > 0 {
			if werr := s.c.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
				cancel()
				return
			}
		}
		if err != nil {
			// EIO: every holder of the terminal is gone; a deadline: the
			// drain after exit is over; closed: hung up.
			return
		}
	}
}

// pumpInput reads the page's messages: keystrokes go to the pty through a
// queue, control frames are handled here.
func (s *session) pumpInput(ctx context.Context, cancel context.CancelFunc, ptmx *os.File) {
	defer cancel()
	q := make(chan []byte, inputQueue)
	defer close(q)
	go func() {
		for b := range q {
			if _, err := ptmx.Write(b); err != nil {
				// Hung up: drain the queue so the reader never blocks.
				for range q {
				}
				return
			}
		}
	}()
	s.c.SetReadLimit(readLimit)
	for {
		typ, data, err := s.c.Read(ctx)
		if err != nil {
			return
		}
		switch typ {
		case websocket.MessageBinary:
			select {
			case q <- data:
			case <-ctx.Done():
				return
			}
		case websocket.MessageText:
			ws, err := resizeFrom(data)
			if err != nil {
				s.log.Debug("webterm: bad control frame", "err", err)
				continue
			}
			if ws != nil {
				if err := pty.Setsize(ptmx, ws); err != nil {
					s.log.Debug("webterm: resize", "err", err) // the pty is closing; the shell is going
				}
			}
		}
	}
}

// keepalive pings the page: traffic keeps idle sessions alive through
// forwarders with idle timeouts, and a peer that stopped answering is
// dropped rather than holding its shell forever.
func (s *session) keepalive(ctx context.Context, cancel context.CancelFunc) {
	t := time.NewTicker(s.cfg.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, s.cfg.pingInterval)
			err := s.c.Ping(pctx)
			pcancel()
			if err != nil {
				if ctx.Err() == nil {
					s.log.Info("webterm: peer stopped answering pings", "err", err)
				}
				cancel()
				return
			}
		}
	}
}

func (s *session) control(ctx context.Context, m Control) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.c.Write(ctx, websocket.MessageText, b)
}

// exitCode is the shell's exit status the way shells print it: the code,
// or 128+N when signal N killed it.
func exitCode(st *os.ProcessState) (int, string) {
	if st == nil {
		return -1, ""
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	return st.ExitCode(), ""
}

// errTooMany is returned to a page when every session slot is taken.
var errTooMany = errors.New("too many terminal sessions")

func parseSize(q func(string) string) (cols, rows int, err error) {
	cols, rows = 80, 24
	if v := q("cols"); v != "" {
		if cols, err = strconv.Atoi(v); err != nil {
			return 0, 0, fmt.Errorf("cols %q: %w", v, err)
		}
	}
	if v := q("rows"); v != "" {
		if rows, err = strconv.Atoi(v); err != nil {
			return 0, 0, fmt.Errorf("rows %q: %w", v, err)
		}
	}
	if !validSize(cols, rows) {
		return 0, 0, fmt.Errorf("size %dx%d: want 1..%d each", cols, rows, maxDim)
	}
	return cols, rows, nil
}
