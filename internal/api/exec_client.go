package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// ExecBody is the JSON body of POST /v1/pods/{id}/exec; stdio then
// travel as frames.
type ExecBody struct {
	Args  []string `json:"args"`
	Env   []string `json:"env,omitempty"`
	Cwd   string   `json:"cwd,omitempty"`
	User  string   `json:"user,omitempty"`
	Tty   bool     `json:"tty,omitempty"`
	Stdin bool     `json:"stdin,omitempty"` // the client sends stdin frames; otherwise stdin is /dev/null
	Size  *Size    `json:"size,omitempty"`  // initial terminal size (tty only)
}

// ExecOptions describe a process to run with ExecStream.
type ExecOptions struct {
	Args []string
	Env  []string // NAME=value
	Cwd  string
	User string
	Tty  bool
	// Size is the terminal's initial size (Tty only; zero: the node's default).
	Size Size
}

// ExecStream runs a process in a pod and streams its stdio: stdin (nil:
// none) is forwarded until EOF, stdout and stderr (nil: discarded) get
// its output (with Tty, all of it on stdout), and every Size on resize
// resizes its terminal. It returns the process's exit code once all its
// output was written. An error means the node could not run it; ending
// ctx kills the process.
//
// A stdin that blocks in Read (a terminal) keeps its goroutine until the
// Read returns; ExecStream itself does not wait for it.
func (c *Client) ExecStream(ctx context.Context, idOrName string, opts ExecOptions, stdin io.Reader, stdout, stderr io.Writer, resize <-chan Size) (int, error) {
	if err := validate(idOrName); err != nil {
		return -1, err
	}
	req := ExecBody{Args: opts.Args, Env: opts.Env, Cwd: opts.Cwd, User: opts.User, Tty: opts.Tty, Stdin: stdin != nil}
	if opts.Tty && opts.Size != (Size{}) {
		sz := opts.Size
		req.Size = &sz
	}
	conn, err := c.dial(ctx, "", "")
	if err != nil {
		return -1, err
	}
	// Ending ctx closes the connection, which the node takes as "kill it".
	var closeOnce sync.Once
	closeConn := func() { closeOnce.Do(func() { conn.Close() }) }
	stop := context.AfterFunc(ctx, closeConn)
	defer stop()
	defer closeConn()

	br, err := c.upgradeExec(ctx, conn, idOrName, req)
	if err != nil {
		return -1, err
	}
	fw := NewFrameWriter(conn)
	sendInput(ctx, fw, stdin, resize)
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return readOutput(ctx, br, stdout, stderr)
}

// upgradeExec sends the exec request on conn and reads the node's answer:
// on 101 the connection carries frames from then on (read through the
// returned reader); any other status is the node's error.
func (c *Client) upgradeExec(ctx context.Context, conn net.Conn, idOrName string, req ExecBody) (*bufio.Reader, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+podPath(idOrName, "exec"), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Connection", "Upgrade")
	hreq.Header.Set("Upgrade", ExecProtocol)
	if err := hreq.Write(conn); err != nil {
		return nil, c.streamErr(ctx, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, hreq)
	if err != nil {
		return nil, c.streamErr(ctx, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		// The status alone is the error when the body cannot be read.
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, errorFromBody(resp.StatusCode, raw)
	}
	return br, nil
}

// sendInput forwards stdin (until EOF, then says so) and terminal resizes
// as frames, each from its own goroutine.
func sendInput(ctx context.Context, fw *FrameWriter, stdin io.Reader, resize <-chan Size) {
	if stdin != nil {
		go func() {
			_, err := io.Copy(fw.Stream(FrameStdin), stdin)
			if err == nil { // EOF: tell the process; a write error means the session is over
				fw.WriteFrame(FrameStdinClose, nil)
			}
		}()
	}
	if resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz, ok := <-resize:
					if !ok || fw.WriteJSON(FrameResize, sz) != nil {
						return
					}
				}
			}
		}()
	}
}

// readOutput copies output frames to stdout and stderr until the exit
// frame, whose code it returns, or an error frame.
func readOutput(ctx context.Context, br *bufio.Reader, stdout, stderr io.Writer) (int, error) {
	var buf []byte
	for {
		t, p, err := ReadFrame(br, buf)
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("exec: connection to pinacle-node lost before the exit status: %w (%w)", errdefs.ErrUnavailable, err)
		}
		buf = p[:0]
		switch t {
		case FrameStdout:
			if _, err := stdout.Write(p); err != nil {
				return -1, fmt.Errorf("exec: write stdout: %w", err)
			}
		case FrameStderr:
			if _, err := stderr.Write(p); err != nil {
				return -1, fmt.Errorf("exec: write stderr: %w", err)
			}
		case FrameExit:
			var e ExitPayload
			if err := json.Unmarshal(p, &e); err != nil {
				return -1, fmt.Errorf("exec: bad exit frame: %w", err)
			}
			return e.Code, nil
		case FrameError:
			return -1, errorFromBody(http.StatusOK, p)
		}
	}
}

func (c *Client) streamErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("exec: pinacle-node at %s: %w (%w)", c.path, errdefs.ErrUnavailable, err)
}

// Exec runs a process with the files of req as its stdio, for callers of
// Service. ExecStream is the richer form (terminal resize, any reader).
func (c *Client) Exec(ctx context.Context, idOrName string, req ExecRequest) (int, error) {
	var stdin io.Reader
	if req.Stdin != nil {
		stdin = req.Stdin
	}
	var stdout, stderr io.Writer
	if req.Stdout != nil {
		stdout = req.Stdout
	}
	if req.Stderr != nil {
		stderr = req.Stderr
	}
	opts := ExecOptions{Args: req.Args, Env: req.Env, Cwd: req.Cwd, User: req.User, Tty: req.Tty}
	return c.ExecStream(ctx, idOrName, opts, stdin, stdout, stderr, nil)
}
