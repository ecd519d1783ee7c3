package hostcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Node runs pinacle-node commands in a Lima VM as root:
// `limactl shell VM sudo [env K=V...] pinacle-node ARGS...`.
type Node struct {
	Lima Lima
	VM   string
	// Binary is the node binary in the VM (default "pinacle-node", found
	// through sudo's secure_path: /usr/local/bin).
	Binary string
	// Env is passed to the node command (K=V), e.g. PINACLE_SOCKET to
	// reach a daemon that is not on the default socket.
	Env []string
}

// NodeError is an error a node command reported: its stable code, message
// and the exit code it exited with (docs/cli.md).
type NodeError struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	ExitCode int    `json:"-"`
}

func (e *NodeError) Error() string { return e.Message }

// Unwrap gives the error its class back, so errdefs.Classify and errors.Is
// work on the host as on the node.
func (e *NodeError) Unwrap() error { return errdefs.FromCode(e.Code) }

// ExitStatusError is a node command that failed without a JSON error on
// stderr (limactl could not reach the VM, the node binary is missing, ...).
type ExitStatusError struct {
	ExitCode int
	Stderr   string
	// Stdout is what the command printed before exiting; a command such
	// as `pod health` prints its result and then exits 1 on purpose.
	Stdout []byte
}

func (e *ExitStatusError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no output"
	}
	return fmt.Sprintf("node command exited with status %d: %s", e.ExitCode, msg)
}

// command is the argv run in the VM for node args.
func (n *Node) command(args []string) []string {
	bin := n.Binary
	if bin == "" {
		bin = "pinacle-node"
	}
	argv := []string{"sudo"}
	if len(n.Env) > 0 {
		// sudo resets the environment; env(1) sets ours after it.
		argv = append(argv, "env")
		argv = append(argv, n.Env...)
	}
	argv = append(argv, bin)
	return append(argv, args...)
}

// RunJSON runs a node command with -o json and returns its stdout. A
// failure is a *NodeError (the node's {code,message} from stderr) or an
// *ExitStatusError.
func (n *Node) RunJSON(ctx context.Context, args []string, stdin io.Reader) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	code, err := n.Lima.Shell(ctx, n.VM, n.command(append(args, "-o", "json")), Stdio{Stdin: stdin, Stdout: &stdout, Stderr: &stderr}, false)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		err := ParseNodeError(code, stderr.Bytes())
		var se *ExitStatusError
		if errors.As(err, &se) {
			se.Stdout = stdout.Bytes()
		}
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}

// Attach runs a node command with the given stdio (tty: the caller's
// terminal) and returns its exit code unchanged.
func (n *Node) Attach(ctx context.Context, args []string, stdio Stdio, tty bool) (int, error) {
	return n.Lima.Shell(ctx, n.VM, n.command(args), stdio, tty)
}

// ParseNodeError finds the node's JSON error on stderr (the last line that
// is one: limactl or sudo may have written before it) for a command that
// exited with code.
func ParseNodeError(code int, stderr []byte) error {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var ne NodeError
		if err := json.Unmarshal([]byte(l), &ne); err == nil && ne.Code != "" {
			ne.ExitCode = code
			return &ne
		}
	}
	return &ExitStatusError{ExitCode: code, Stderr: string(stderr)}
}
