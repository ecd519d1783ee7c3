package oci

// The runsc driver: the Runtime implementation and the one place runsc is
// executed (run). Spec building lives in spec.go and bundle.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

var _ Runtime = (*runsc)(nil)

// runsc drives the runsc binary. It is safe for concurrent use.
type runsc struct {
	binary     string
	root       string
	platform   string
	overlay2   string
	network    string
	timeout    time.Duration
	debugLogs  string
	log        *slog.Logger
	containers sync.Map // id -> *ctrInfo
}

// ctrInfo is what the runtime remembers about a container it created, so
// Wait and Delete need not reread the bundle.
type ctrInfo struct {
	mu          sync.Mutex
	cgroupsPath string
	pid         int   // sandbox pid
	pids        []int // every process runsc left to us for it (sandbox, gofer, exec helpers)
	bundle      string
	spec        *specs.Spec
	exit        *ExitInfo
}

// New returns a Runtime backed by the runsc binary.
func New(opts ...Option) (Runtime, error) {
	r := &runsc{
		root:     "/run/pinacle/runsc",
		platform: "systrap",
		overlay2: "none",
		network:  NetworkSandbox,
		timeout:  30 * time.Second,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if r.binary == "" {
		r.binary = "runsc"
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.binary == "runsc" {
		p, err := exec.LookPath("runsc")
		if err != nil {
			return nil, fmt.Errorf("runsc not found in PATH: %w", errdefs.ErrUnavailable)
		}
		r.binary = p
	}
	if err := os.MkdirAll(r.root, 0o700); err != nil {
		return nil, fmt.Errorf("runsc root: %w", err)
	}
	return r, nil
}

// call is one runsc invocation.
type call struct {
	id      string   // for debug log placement
	global  []string // extra global flags
	args    []string // subcommand and its arguments
	stdin   *os.File
	stdout  *os.File // nil: captured (returned) when capture, else /dev/null
	stderr  *os.File // nil: captured for the error message
	capture bool
	// unbounded: no default timeout (wait, attached exec); ctx still applies.
	unbounded bool
	tty       bool
	// exitPassthrough: a nonzero exit without a logged error is the
	// process's own status (exec), not a runsc failure.
	exitPassthrough bool
}

// run executes c and returns captured stdout and the exit code.
func (r *runsc) run(ctx context.Context, c call) ([]byte, int, error) {
	if _, ok := ctx.Deadline(); !ok && !c.unbounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	logf, err := anonFile("runsc-log-*")
	if err != nil {
		return nil, -1, err
	}
	defer logf.Close()

	cmd := exec.CommandContext(ctx, r.binary, r.args(c, fdPath(logf))...)
	outf, errf, closeStdio, err := setStdio(cmd, c)
	if err != nil {
		return nil, -1, err
	}
	defer closeStdio()
	if c.tty {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	// On ctx end kill runsc's whole process group: a hung runsc (kvm) can
	// hold children that would otherwise outlive it.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	done, runErr := theReaper.start(cmd, func() int { return cmd.Process.Pid })
	if runErr == nil {
		runErr = cmd.Wait()
	}
	done()
	r.log.Debug("runsc", "args", c.args, "took", time.Since(start), "err", runErr)

	var out []byte
	if outf != nil {
		out, _ = readAll(outf) // unreadable: no output to return, the exit says the rest
	}
	if runErr == nil {
		return out, 0, nil
	}
	if ctx.Err() != nil {
		return out, -1, fmt.Errorf("runsc %s: %w", c.args[0], ctx.Err())
	}
	code, err := runFailure(c, runErr, logf, errf)
	return out, code, err
}

// args are runsc's global flags for this runtime and c, then c's command.
func (r *runsc) args(c call, logPath string) []string {
	args := []string{
		"--root=" + r.root, "--platform=" + r.platform, "--overlay2=" + r.overlay2,
		"--network=" + r.network, "--log=" + logPath, "--log-format=json",
	}
	if r.debugLogs != "" && c.id != "" {
		args = append(args, "--debug", "--debug-log="+filepath.Join(r.debugLogs, c.id)+"/")
	}
	args = append(args, c.global...) // later flags win
	return append(args, c.args...)
}

// setStdio gives cmd c's stdio, /dev/null where c has none, and temporary
// files for captured stdout (outf) and for stderr (errf) when c does not
// take it; closeStdio closes and removes them.
func setStdio(cmd *exec.Cmd, c call) (outf, errf *os.File, closeStdio func(), err error) {
	var closers []func()
	closeStdio = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	tempFile := func(pattern string) (*os.File, error) {
		f, err := anonFile(pattern)
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { f.Close() })
		return f, nil
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, closeStdio, err
	}
	closers = append(closers, func() { devnull.Close() })
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if c.stdin != nil {
		cmd.Stdin = c.stdin
	}
	switch {
	case c.stdout != nil:
		cmd.Stdout = c.stdout
	case c.capture:
		// A file, never a pipe: runsc's children inherit stdout.
		if outf, err = tempFile("runsc-out-*"); err != nil {
			closeStdio()
			return nil, nil, func() {}, err
		}
		cmd.Stdout = outf
	}
	if c.stderr != nil {
		cmd.Stderr = c.stderr
	} else {
		if errf, err = tempFile("runsc-err-*"); err != nil {
			closeStdio()
			return nil, nil, func() {}, err
		}
		cmd.Stderr = errf
	}
	return outf, errf, closeStdio, nil
}

// runFailure turns a runsc that exited nonzero into c's exit code and
// error: the process's own status for a passthrough call when runsc
// logged no error, else a runscError classified from runsc's log (or its
// stderr when the log says nothing).
func runFailure(c call, runErr error, logf, errf *os.File) (int, error) {
	var ee *exec.ExitError
	if !errors.As(runErr, &ee) {
		return -1, fmt.Errorf("runsc %s: %w", c.args[0], runErr)
	}
	code := ee.ExitCode()
	logb, _ := readAll(logf) // unreadable: classified from stderr instead
	var errb []byte
	if errf != nil {
		errb, _ = readAll(errf) // unreadable: an unclassified error
	}
	msg := logMessage(logb, nil)
	if c.exitPassthrough && msg == "" {
		return code, nil
	}
	if msg == "" {
		msg = logMessage(nil, errb)
	}
	return code, &runscError{cmd: c.args[0], code: code, msg: msg, class: classifyRunsc(msg)}
}

func (r *runsc) info(id string) *ctrInfo {
	v, _ := r.containers.LoadOrStore(id, &ctrInfo{})
	return v.(*ctrInfo)
}

// anonFile is a temporary file already unlinked, so that a node killed
// while runsc runs leaves nothing behind in the temp dir (chaos runs
// left hundreds).
func anonFile(pattern string) (*os.File, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// fdPath names f for runsc, which opens its --log by path in its own
// process: /proc/<node>/fd/N reaches the unlinked file (runsc runs as
// root, as the node does).
func fdPath(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}

// readAll reads f from its start, whatever its offset.
func readAll(f *os.File) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(f, 0, math.MaxInt64))
}
