package hostcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// EnvLimactl names the limactl binary to run (default "limactl" from PATH).
const EnvLimactl = "LIMACTL"

// Lima is what the host CLI needs from limactl.
type Lima interface {
	// List returns every instance (`limactl list --json`).
	List(ctx context.Context) ([]Instance, error)
	// Create creates an instance from a template file without starting it
	// (limactl downloads the VM image here), showing limactl's progress as
	// it happens. It fails with ErrAlreadyExists, touching nothing, when
	// the instance exists. A create that fails leaves no instance behind
	// (limactl makes the instance before it downloads; the half-made one is
	// deleted), so it can simply be run again.
	Create(ctx context.Context, opts CreateOptions) error
	Start(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Delete(ctx context.Context, name string, force bool) error
	// Copy copies a host file or directory into the VM (`limactl copy -r`).
	Copy(ctx context.Context, name, src, dst string) error
	// Shell runs args in the VM (`limactl shell`) with the given stdio and
	// returns the command's exit code; err is for failures to run limactl.
	// With tty, limactl gets the caller's terminal (stdio must be it).
	Shell(ctx context.Context, name string, args []string, stdio Stdio, tty bool) (int, error)
}

// Stdio are the streams of a command run in the VM.
type Stdio struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Instance is one Lima instance as `limactl list --json` prints it (the
// fields the host CLI shows; the rest are ignored).
type Instance struct {
	Name        string            `json:"name"`
	Status      string            `json:"status"`
	Dir         string            `json:"dir,omitempty"`
	VMType      string            `json:"vmType,omitempty"`
	Arch        string            `json:"arch,omitempty"`
	CPUs        int               `json:"cpus,omitempty"`
	Memory      int64             `json:"memory,omitempty"` // bytes
	Disk        int64             `json:"disk,omitempty"`   // bytes
	Message     string            `json:"message,omitempty"`
	LimaVersion string            `json:"limaVersion,omitempty"`
	Param       map[string]string `json:"param,omitempty"`
}

// CreateOptions are the arguments of `limactl create`.
type CreateOptions struct {
	Name     string
	Template string // path of lima.yaml
	// Set are yq expressions applied to the template (--set), joined with |.
	Set []string
	// CPUs, MemoryGiB and DiskGiB override the template when > 0.
	CPUs      int
	MemoryGiB float64
	DiskGiB   float64
}

// Option configures a Lima.
type Option func(*limactl) error

// WithPath sets the limactl binary (a name looked up in PATH, or a path).
func WithPath(path string) Option {
	return func(l *limactl) error {
		if strings.TrimSpace(path) == "" {
			return fmt.Errorf("limactl path is empty: %w", errdefs.ErrInvalidArgument)
		}
		l.path = path
		return nil
	}
}

// WithOutput sets where limactl's progress (create, start, stop, delete)
// goes; default os.Stderr. An *os.File is handed to limactl as is, so it
// draws its progress bars when that is a terminal.
func WithOutput(w io.Writer) Option {
	return func(l *limactl) error {
		if w == nil {
			return fmt.Errorf("nil output: %w", errdefs.ErrInvalidArgument)
		}
		l.out = w
		return nil
	}
}

// WithLogger logs each limactl call at debug level.
func WithLogger(log *slog.Logger) Option {
	return func(l *limactl) error {
		if log == nil {
			return fmt.Errorf("nil logger: %w", errdefs.ErrInvalidArgument)
		}
		l.log = log
		return nil
	}
}

type limactl struct {
	path string
	log  *slog.Logger
	out  io.Writer // progress of attached commands
}

var _ Lima = (*limactl)(nil)

// NewLimactl returns a Lima that runs limactl: by default $LIMACTL, else
// "limactl" from PATH.
func NewLimactl(opts ...Option) (Lima, error) {
	l := &limactl{path: "limactl", log: slog.New(slog.DiscardHandler), out: os.Stderr}
	if p := os.Getenv(EnvLimactl); p != "" {
		l.path = p
	}
	for _, o := range opts {
		if err := o(l); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// run runs limactl with args; a failure carries limactl's stderr.
func (l *limactl) run(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, l.path, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	l.log.Debug("limactl", "args", args)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if notInstalled(err) {
			return nil, l.notFound()
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%v: %s", err, msg)
		}
		return nil, fmt.Errorf("limactl %s: %v: %w", args[0], err, errdefs.ErrUnavailable)
	}
	return stdout.Bytes(), nil
}

func (l *limactl) List(ctx context.Context) ([]Instance, error) {
	out, err := l.run(ctx, "list", "--json")
	if err != nil {
		return nil, err
	}
	return parseInstances(out)
}

// parseInstances reads limactl's list output: one JSON object per line
// (older releases), or one JSON array.
func parseInstances(out []byte) ([]Instance, error) {
	var insts []Instance
	trimmed := bytes.TrimSpace(out)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &insts); err != nil {
			return nil, fmt.Errorf("limactl list --json: %w", err)
		}
		return insts, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(trimmed))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var in Instance
		if err := json.Unmarshal(line, &in); err != nil {
			return nil, fmt.Errorf("limactl list --json: %w", err)
		}
		insts = append(insts, in)
	}
	return insts, sc.Err()
}

func (l *limactl) Create(ctx context.Context, o CreateOptions) error {
	if o.Name == "" || o.Template == "" {
		return fmt.Errorf("limactl create: name and template are required: %w", errdefs.ErrInvalidArgument)
	}
	args := []string{"create", "--name=" + o.Name, "--tty=false"}
	if len(o.Set) > 0 {
		args = append(args, "--set", strings.Join(o.Set, " | "))
	}
	if o.CPUs > 0 {
		args = append(args, fmt.Sprintf("--cpus=%d", o.CPUs))
	}
	if o.MemoryGiB > 0 {
		args = append(args, fmt.Sprintf("--memory=%g", o.MemoryGiB))
	}
	if o.DiskGiB > 0 {
		args = append(args, fmt.Sprintf("--disk=%g", o.DiskGiB))
	}
	if _, err := l.find(ctx, o.Name); err == nil {
		return fmt.Errorf("VM %q: %w", o.Name, errdefs.ErrAlreadyExists)
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	err := l.attach(ctx, append(args, o.Template)...)
	if err == nil {
		return nil
	}
	class := errdefs.ErrUnavailable
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errdefs.ErrUnavailable) {
		class = nil // err has its class (canceled, or limactl missing)
	}
	wrap := func(msg string, args ...any) error {
		if class != nil {
			return fmt.Errorf(msg+": %w", append(args, class)...)
		}
		return fmt.Errorf(msg, args...)
	}
	// Undo: limactl made the instance before it failed (typically in the
	// image download). Also when ctx was canceled (^C), so not with ctx.
	undo := context.WithoutCancel(ctx)
	if _, ferr := l.find(undo, o.Name); ferr != nil {
		// Nothing was left (or limactl cannot tell): nothing to undo.
		return wrap("limactl create %s: %w (its output is above)", o.Name, err)
	}
	if derr := l.runAttached(undo, "delete", "--force", o.Name); derr != nil {
		return wrap("limactl create %s: %w (its output is above); removing the half-made VM failed too (%v): remove it with pinacle vm delete --force", o.Name, err, derr)
	}
	return wrap("limactl create %s: %w (its output is above); the half-made VM %q was removed: run the command again to retry", o.Name, err, o.Name)
}

// find returns the named instance, or ErrNotFound.
func (l *limactl) find(ctx context.Context, name string) (*Instance, error) {
	insts, err := l.List(ctx)
	if err != nil {
		return nil, err
	}
	return Find(insts, name)
}

// Start, Stop and Delete pass limactl's progress through to stderr: a first
// start downloads an image and provisions for minutes.
func (l *limactl) Start(ctx context.Context, name string) error {
	return l.runAttached(ctx, "start", "--tty=false", name)
}

func (l *limactl) Stop(ctx context.Context, name string) error {
	return l.runAttached(ctx, "stop", name)
}

func (l *limactl) Delete(ctx context.Context, name string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	return l.runAttached(ctx, append(args, name)...)
}

func (l *limactl) Copy(ctx context.Context, name, src, dst string) error {
	_, err := l.run(ctx, "copy", "-r", src, name+":"+dst)
	return err
}

func (l *limactl) runAttached(ctx context.Context, args ...string) error {
	err := l.attach(ctx, args...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("limactl %s %s: %v (its output is above): %w", args[0], args[len(args)-1], err, errdefs.ErrUnavailable)
	}
	return err
}

// attach runs limactl with its output on l.out. Its error is ctx's, the
// not-installed error, or exec's (*exec.ExitError) as is.
func (l *limactl) attach(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, l.path, args...)
	cmd.Stdout, cmd.Stderr = l.out, l.out
	l.log.Debug("limactl", "args", args)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if notInstalled(err) {
			return l.notFound()
		}
		return err
	}
	return nil
}

func (l *limactl) Shell(ctx context.Context, name string, args []string, stdio Stdio, tty bool) (int, error) {
	// --workdir /: the host's current directory usually does not exist in
	// the VM, and limactl would warn about it on every command.
	full := append([]string{"shell", "--workdir", "/", name}, args...)
	cmd := exec.CommandContext(ctx, l.path, full...)
	// Hide files behind plain writers: limactl asks ssh for a terminal
	// (-t) whenever its stdout is one, which would merge stderr into stdout
	// and turn \n into \r\n. Only an explicit tty gets one.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, plainWriter(stdio.Stdout), plainWriter(stdio.Stderr)
	if tty {
		// limactl asks ssh for a terminal when its own stdin is one.
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	l.log.Debug("limactl", "args", full)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), nil
	case notInstalled(err):
		return -1, l.notFound()
	}
	return -1, fmt.Errorf("limactl shell %s: %v: %w", name, err, errdefs.ErrUnavailable)
}

// plainWriter hides an *os.File from exec, so the child gets a pipe.
func plainWriter(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return struct{ io.Writer }{w}
}

// notInstalled says whether err is limactl missing (a name not in PATH,
// or a path that does not exist).
func notInstalled(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

func (l *limactl) notFound() error {
	return fmt.Errorf("limactl %q not found (install Lima: brew install lima, or set %s): %w", l.path, EnvLimactl, errdefs.ErrUnavailable)
}

// Find returns the named instance from insts, or ErrNotFound.
func Find(insts []Instance, name string) (*Instance, error) {
	for i := range insts {
		if insts[i].Name == name {
			return &insts[i], nil
		}
	}
	return nil, fmt.Errorf("VM %q: %w (create it: pinacle vm create)", name, errdefs.ErrNotFound)
}
