package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// drainTimeout bounds how long output is still forwarded after the
// process exited: a background child that inherited stdout could hold the
// pipe open forever.
const drainTimeout = 2 * time.Second

// validateExec checks an exec body before the protocol switch.
func validateExec(r *api.ExecBody) error {
	if len(r.Args) == 0 || r.Args[0] == "" {
		return badField("args", "required: the command to run")
	}
	for i, e := range r.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			return badField(fmt.Sprintf("env[%d]", i), "want NAME=value, got %q", e)
		}
	}
	if r.Size != nil && !r.Tty {
		return badField("size", "only with tty")
	}
	return nil
}

// exec checks the request and the pod, switches the connection to the
// exec frame protocol and runs the process. Errors before the switch are
// ordinary JSON errors; after it, an error frame.
func (s *Server) exec(w http.ResponseWriter, r *http.Request, id string) {
	if !headerHas(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), api.ExecProtocol) {
		s.writeError(w, r, fmt.Errorf("exec: want headers Connection: Upgrade and Upgrade: %s: %w", api.ExecProtocol, errdefs.ErrInvalidArgument))
		return
	}
	var req api.ExecBody
	if err := s.decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := validateExec(&req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if _, err := s.svc.Get(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.writeError(w, r, fmt.Errorf("exec: cannot switch protocols: %w", err))
		return
	}
	if rec, ok := w.(*statusRecorder); ok {
		rec.status = http.StatusSwitchingProtocols
	}
	s.execs.Add(1)
	defer s.execs.Done()
	defer conn.Close()
	// The request's context ends at hijack; the session lives until the
	// process exits, the client goes away, or the server shuts down.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	conn.SetDeadline(time.Time{})
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", api.ExecProtocol)
	if err := brw.Flush(); err != nil {
		return
	}
	sess := &execSession{
		svc:  s.svc,
		id:   id,
		req:  req,
		conn: conn,
		in:   brw.Reader,
		fw:   api.NewFrameWriter(conn),
		log:  s.log.With("pod", id),
	}
	sess.run(ctx, cancel)
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// execSession is one exec over a switched connection.
type execSession struct {
	svc  api.Service
	id   string
	req  api.ExecBody
	conn net.Conn
	in   *bufio.Reader
	fw   *api.FrameWriter
	log  interface {
		Debug(string, ...any)
		Warn(string, ...any)
	}
}

// stdio are the files the process gets and the ends the session pumps.
type stdio struct {
	child         []*os.File // closed by us once Exec returns: the child has its own copies
	stdin, stdout *os.File   // process's
	stderr        *os.File
	inW           *os.File // we write stdin here (nil: no stdin)
	outR, errR    *os.File // we read output here (errR nil with a tty)
	master        *os.File // tty only
}

func (s *execSession) setup() (*stdio, error) {
	st := &stdio{}
	fail := func(err error) (*stdio, error) {
		st.closeChild()
		st.closeOurs()
		return nil, err
	}
	if s.req.Tty {
		master, slave, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("exec: open pty: %w", err)
		}
		st.master, st.outR = master, master
		st.child = append(st.child, slave)
		st.stdin, st.stdout, st.stderr = slave, slave, slave
		if s.req.Stdin {
			st.inW = master
		}
		if sz := s.req.Size; sz != nil {
			if err := pty.Setsize(master, &pty.Winsize{Cols: sz.Cols, Rows: sz.Rows}); err != nil {
				return fail(fmt.Errorf("exec: set terminal size: %w", err))
			}
		}
		return st, nil
	}
	if s.req.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(fmt.Errorf("exec: stdin pipe: %w", err))
		}
		st.stdin, st.inW = r, w
		st.child = append(st.child, r)
	} else {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return fail(fmt.Errorf("exec: %w", err))
		}
		st.stdin = null
		st.child = append(st.child, null)
	}
	or, ow, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("exec: stdout pipe: %w", err))
	}
	st.stdout, st.outR = ow, or
	st.child = append(st.child, ow)
	er, ew, err := os.Pipe()
	if err != nil {
		return fail(fmt.Errorf("exec: stderr pipe: %w", err))
	}
	st.stderr, st.errR = ew, er
	st.child = append(st.child, ew)
	return st, nil
}

func (st *stdio) closeChild() {
	for _, f := range st.child {
		f.Close()
	}
	st.child = nil
}

func (st *stdio) closeOurs() {
	for _, f := range []*os.File{st.inW, st.outR, st.errR, st.master} {
		if f != nil {
			f.Close()
		}
	}
}

func (s *execSession) sendError(err error) {
	body, _ := errorBody(err)
	if werr := s.fw.WriteJSON(api.FrameError, body); werr != nil {
		s.log.Debug("api: exec: send error frame", "err", werr)
	}
}

func (s *execSession) run(ctx context.Context, cancel context.CancelFunc) {
	sio, err := s.setup()
	if err != nil {
		s.sendError(err)
		return
	}
	defer sio.closeOurs()

	// Output pumps: everything the process writes, as frames.
	var pumps sync.WaitGroup
	pump := func(r *os.File, t api.FrameType) {
		defer pumps.Done()
		_, err := io.Copy(s.fw.Stream(t), r)
		// A pty master reads EIO once the slave side is closed: that is its EOF.
		if err != nil && !isClosedErr(err) {
			s.log.Debug("api: exec: output", "stream", t, "err", err)
			// The client is gone (the input reader may be stuck writing
			// to a stdin nobody reads and not notice): kill the process.
			cancel()
		}
	}
	pumps.Add(1)
	go pump(sio.outR, api.FrameStdout)
	if sio.errR != nil {
		pumps.Add(1)
		go pump(sio.errR, api.FrameStderr)
	}

	// Input: frames from the client. A read error means the client went
	// away: cancel, so the service kills the process.
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		s.readInput(ctx, cancel, sio)
	}()

	code, err := s.svc.Exec(ctx, s.id, api.ExecRequest{
		Args: s.req.Args, Env: s.req.Env, Cwd: s.req.Cwd, User: s.req.User, Tty: s.req.Tty,
		Stdin: sio.stdin, Stdout: sio.stdout, Stderr: sio.stderr,
	})
	// Our copies of the child's ends go, so the pumps see EOF once the
	// process (and anything it left behind) has closed its copies.
	sio.closeChild()
	drained := make(chan struct{})
	go func() { pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		// Something still holds the output open; stop forwarding.
		if sio.outR != nil {
			sio.outR.Close()
		}
		if sio.errR != nil {
			sio.errR.Close()
		}
		<-drained
	}
	if ctx.Err() == nil {
		if err != nil {
			s.sendError(err)
		} else if werr := s.fw.WriteJSON(api.FrameExit, api.ExitPayload{Code: code}); werr != nil {
			s.log.Debug("api: exec: send exit frame", "err", werr)
		}
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("api: exec failed", "args", s.req.Args, "err", err)
	}
	// Closing the conn (deferred by the handler) ends readInput.
	cancel()
	s.conn.Close()
	<-inputDone
}

func (s *execSession) readInput(ctx context.Context, cancel context.CancelFunc, sio *stdio) {
	var buf []byte
	stdinOpen := sio.inW != nil
	for {
		t, p, err := api.ReadFrame(s.in, buf)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("api: exec: client gone", "err", err)
			}
			cancel()
			return
		}
		buf = p[:0]
		switch t {
		case api.FrameStdin:
			if !stdinOpen {
				continue // stdin not requested or closed: drop, as a closed pipe would
			}
			if _, err := sio.inW.Write(p); err != nil {
				// The process closed its stdin; keep serving resizes.
				stdinOpen = false
			}
		case api.FrameStdinClose:
			if stdinOpen {
				stdinOpen = false
				if sio.master != nil {
					// A terminal has no EOF of its own: send ^D, as a user would.
					sio.master.Write([]byte{4})
				} else {
					sio.inW.Close()
				}
			}
		case api.FrameResize:
			if sio.master == nil {
				continue
			}
			var sz api.Size
			if err := json.Unmarshal(p, &sz); err != nil {
				s.log.Debug("api: exec: bad resize frame", "err", err)
				continue
			}
			if err := pty.Setsize(sio.master, &pty.Winsize{Cols: sz.Cols, Rows: sz.Rows}); err != nil {
				s.log.Debug("api: exec: resize", "err", err)
			}
		default:
			s.log.Debug("api: exec: unexpected frame", "type", t)
		}
	}
}

func isClosedErr(err error) bool {
	// EIO comes from a pty master whose slave side is closed.
	return errors.Is(err, syscall.EIO) || errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF)
}
