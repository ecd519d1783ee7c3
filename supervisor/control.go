package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Control operations.
const (
	OpList    = "ls"
	OpStart   = "start"
	OpStop    = "stop"
	OpRestart = "restart"
)

// ControlRequest is one request on the control socket (one JSON line per connection).
type ControlRequest struct {
	Op      string `json:"op"`
	Service string `json:"service,omitempty"`
}

// ControlResponse answers a ControlRequest. Status is the supervisor status
// after the operation. Error uses the errdefs codes so the node can rebuild
// the error class.
type ControlResponse struct {
	Status *Status       `json:"status,omitempty"`
	Error  *ControlError `json:"error,omitempty"`
}

// ControlError is an error as it crosses the control channel.
type ControlError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Err rebuilds the error, wrapping its errdefs class.
func (e *ControlError) Err() error {
	if e == nil {
		return nil
	}
	if class := errdefs.FromCode(e.Code); class != nil {
		return fmt.Errorf("%s: %w", strings.TrimSuffix(e.Message, ": "+class.Error()), class)
	}
	return errors.New(e.Message)
}

func toControlError(err error) *ControlError {
	if err == nil {
		return nil
	}
	return &ControlError{Code: errdefs.Classify(err).Code, Message: err.Error()}
}

type controlServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

// serveControl listens on socket ("@name" is abstract). Only root peers
// are served: any process in the pod can reach an abstract socket, and an
// unprivileged service must not be able to stop its neighbours.
func (s *Supervisor) serveControl(socket string) (*controlServer, error) {
	if !strings.HasPrefix(socket, "@") {
		os.Remove(socket) // a stale socket from a previous init
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	cs := &controlServer{ln: ln}
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cs.wg.Add(1)
			go func() {
				defer cs.wg.Done()
				s.handleControl(c.(*net.UnixConn))
			}()
		}
	}()
	return cs, nil
}

func (cs *controlServer) close() {
	cs.ln.Close()
	cs.wg.Wait()
}

func (s *Supervisor) handleControl(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	resp := ControlResponse{}
	if err := checkPeerRoot(c); err != nil {
		resp.Error = toControlError(err)
		json.NewEncoder(c).Encode(resp)
		return
	}
	var req ControlRequest
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		// Lenient, as on the node's side: the two ends of the control
		// socket may be different versions (a pod outlives an upgrade).
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		resp.Error = toControlError(fmt.Errorf("control request: %w: %w", err, errdefs.ErrInvalidArgument))
		json.NewEncoder(c).Encode(resp)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch req.Op {
	case OpList:
	case OpStart:
		err = s.Start(ctx, req.Service)
	case OpStop:
		err = s.Stop(ctx, req.Service)
	case OpRestart:
		err = s.Restart(ctx, req.Service)
	default:
		err = fmt.Errorf("control op %q: want ls, start, stop or restart: %w", req.Op, errdefs.ErrInvalidArgument)
	}
	resp.Error = toControlError(err)
	resp.Status = s.Status()
	json.NewEncoder(c).Encode(resp)
}

func checkPeerRoot(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var serr error
	raw.Control(func(fd uintptr) { cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if serr != nil {
		return fmt.Errorf("control: peer credentials: %w", serr)
	}
	if cred.Uid != 0 {
		return fmt.Errorf("control: uid %d may not control services (root only): %w", cred.Uid, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Control sends one request to the supervisor listening on socket and
// returns its status after the operation. This is what `pinacle-node init
// svc` runs inside the sandbox.
func Control(ctx context.Context, socket string, req ControlRequest) (*Status, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w: %w", socket, err, errdefs.ErrUnavailable)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("control socket %s: %w: %w", socket, err, errdefs.ErrUnavailable)
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("control %s %s: %w", req.Op, req.Service, ctx.Err())
		}
		return nil, fmt.Errorf("control socket %s: reading reply: %w: %w", socket, err, errdefs.ErrUnavailable)
	}
	return resp.Status, resp.Error.Err()
}

// ExecFunc runs argv inside a pod's sandbox (runsc exec) and returns its
// stdout. A non-zero exit is an error, but stdout must still be returned.
type ExecFunc func(ctx context.Context, argv []string) (stdout []byte, err error)

// InitBinary is where the node bind-mounts its own binary in every sandbox.
const InitBinary = "/.pinacle/bin/pinacle-node"

// ControlCommand is the argv that performs op on service inside a sandbox.
func ControlCommand(op, service string) []string {
	argv := []string{InitBinary, "init", "svc", op}
	if service != "" {
		argv = append(argv, service)
	}
	return append(argv, "-o", "json")
}

// ExecControl is the node side of the control channel: it runs
// ControlCommand in the sandbox through exec and decodes the reply, which
// `init svc -o json` prints as a ControlResponse whatever the outcome.
func ExecControl(ctx context.Context, exec ExecFunc, op, service string) (*Status, error) {
	if op != OpList {
		if err := errdefs.ValidateID("service", service); err != nil {
			return nil, err
		}
	}
	out, execErr := exec(ctx, ControlCommand(op, service))
	var resp ControlResponse
	if err := json.Unmarshal(out, &resp); err != nil || (resp.Status == nil && resp.Error == nil) {
		if execErr != nil {
			return nil, fmt.Errorf("service %s %s: %w", op, service, execErr)
		}
		return nil, fmt.Errorf("service %s %s: unreadable reply %q: %w", op, service, out, errdefs.ErrUnavailable)
	}
	return resp.Status, resp.Error.Err()
}

// NewControlResponse packs the outcome of Control into the reply shape
// `init svc -o json` prints, so the node decodes one shape either way.
func NewControlResponse(st *Status, err error) ControlResponse {
	return ControlResponse{Status: st, Error: toControlError(err)}
}
