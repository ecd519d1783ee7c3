package hostcli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Host flags the forwarded command groups understand; everything else goes
// to the node unchanged.
const (
	FlagVM           = "vm"
	FlagOutput       = "output"
	FlagNodeSocket   = "node-socket"
	FlagNodeDataRoot = "node-data-root"
)

// Invocation is a forwarded command (`pinacle pod|image|template ...`)
// split into the host's flags and the node's arguments.
type Invocation struct {
	Group string   // pod, image or template
	Args  []string // the node's arguments after Group (host flags removed)
	Sub   string   // the subcommand: the first positional argument
	// Host flags, set only when given on the command line.
	Output, VM, NodeSocket, NodeDataRoot string
	Help                                 bool
	// Open (--open, pod url) opens the link in the host's browser, not
	// the VM's.
	Open bool
}

// execValueFlags are the flags of `pod exec` that take a value: exec's
// arguments after the pod ID are the command's, so parsing stops there.
var execValueFlags = map[string]bool{"-e": true, "--env": true, "-w": true, "--workdir": true, "-u": true, "--user": true}

// ParseForward splits args (what followed the group word) into host flags
// and node arguments. Host flags may appear anywhere before "--" (for
// exec: before the pod ID).
func ParseForward(group string, args []string) (*Invocation, error) {
	inv := &Invocation{Group: group}
	positional := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			inv.Args = append(inv.Args, args[i:]...)
			break
		}
		if inv.Sub == "exec" && positional >= 2 {
			// exec ID CMD...: the rest is the command's.
			inv.Args = append(inv.Args, args[i:]...)
			break
		}
		name, val, hasVal, isHost := hostFlag(a)
		if isHost {
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("flag %s needs a value: %w", a, errdefs.ErrInvalidArgument)
				}
				i++
				val = args[i]
			}
			switch name {
			case FlagVM:
				inv.VM = val
			case FlagOutput:
				inv.Output = val
			case FlagNodeSocket:
				inv.NodeSocket = val
			case FlagNodeDataRoot:
				inv.NodeDataRoot = val
			}
			continue
		}
		if a == "--open" {
			inv.Open = true
			continue
		}
		if a == "-h" || a == "--help" {
			inv.Help = true
		}
		inv.Args = append(inv.Args, a)
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			if inv.Sub == "exec" && execValueFlags[a] && i+1 < len(args) {
				i++
				inv.Args = append(inv.Args, args[i])
			}
			continue
		}
		if positional == 0 {
			inv.Sub = a
		}
		positional++
	}
	switch inv.Output {
	case "", "table", "wide", "json", "yaml":
	default:
		return nil, fmt.Errorf("--output %q: want table, json or yaml: %w", inv.Output, errdefs.ErrInvalidArgument)
	}
	return inv, nil
}

// hostFlag recognises --vm, -o/--output, --node-socket and
// --node-data-root, with the value attached (--vm=x, -ojson) or not.
func hostFlag(a string) (name, val string, hasVal, ok bool) {
	if v, found := strings.CutPrefix(a, "-o"); found && !strings.HasPrefix(a, "--") {
		if v == "" {
			return FlagOutput, "", false, true
		}
		return FlagOutput, strings.TrimPrefix(v, "="), true, true
	}
	if !strings.HasPrefix(a, "--") {
		return "", "", false, false
	}
	n, v, has := strings.Cut(a[2:], "=")
	switch n {
	case FlagVM, FlagOutput, FlagNodeSocket, FlagNodeDataRoot:
		return n, v, has, true
	}
	return "", "", false, false
}

// Forwarder runs forwarded commands on the node in the VM and shows their
// results.
type Forwarder struct {
	Node   *Node
	Stdio  Stdio
	IsTerm func() bool // whether stdin and stdout are a terminal (exec -t)
	// Open opens a URL in the host's browser (pod url --open).
	Open func(ctx context.Context, url string) error
}

// Run runs inv and returns the exit code to leave with. Node errors are
// printed (as "Error (code): message", or the node's JSON under -o json)
// and become their exit code; err is for failures of the host side.
func (f *Forwarder) Run(ctx context.Context, inv *Invocation) (int, error) {
	if f.attached(inv) {
		return f.runAttached(ctx, inv)
	}
	args := append([]string(nil), inv.Args...)
	stdin, err := f.hostFiles(inv, args)
	if err != nil {
		return 0, err
	}
	cleanup, err := f.copyHostPaths(ctx, inv, args)
	if err != nil {
		return 0, err
	}
	defer cleanup()
	out, err := f.Node.RunJSON(ctx, append([]string{inv.Group}, args...), stdin)
	code := 0
	if err != nil {
		var se *ExitStatusError
		if !errors.As(err, &se) || len(bytes.TrimSpace(se.Stdout)) == 0 {
			return f.showError(inv, err)
		}
		// A result with a status (pod health exits 1 when unhealthy):
		// show the result, keep the status.
		if s := strings.TrimSpace(se.Stderr); s != "" {
			fmt.Fprintln(f.Stdio.Stderr, s)
		}
		code = se.ExitCode
	}
	switch inv.Output {
	case "json":
		_, err = f.Stdio.Stdout.Write(out)
	case "yaml":
		err = RenderGeneric(f.Stdio.Stdout, out)
	default:
		err = f.render(inv, out)
	}
	if err == nil && code == 0 && inv.Open && inv.Group == "pod" && inv.Sub == "url" {
		err = f.openLink(ctx, out)
	}
	return code, err
}

// openLink opens the link of a `pod url` result in the host's browser.
func (f *Forwarder) openLink(ctx context.Context, out []byte) error {
	var u api.PodURL
	if err := json.Unmarshal(out, &u); err != nil || u.URL == "" {
		return fmt.Errorf("pod url --open: no link in the node's answer: %w", errdefs.ErrInvalidArgument)
	}
	if f.Open == nil {
		return fmt.Errorf("pod url --open: no browser opener: %w", errdefs.ErrUnavailable)
	}
	return f.Open(ctx, u.URL)
}

// attached says whether a command streams or talks to a person, so it runs
// with stdio attached instead of -o json: exec, logs, followed events,
// pulls (progress), help.
func (f *Forwarder) attached(inv *Invocation) bool {
	if inv.Help {
		return true
	}
	switch inv.Group + " " + inv.Sub {
	case "pod exec", "pod logs":
		return true
	case "pod events":
		return hasAny(inv.Args, "-f", "--follow")
	case "image pull":
		return inv.Output == "" || inv.Output == "table" || inv.Output == "wide"
	}
	return false
}

func (f *Forwarder) runAttached(ctx context.Context, inv *Invocation) (int, error) {
	args := append([]string(nil), inv.Args...)
	if inv.Output != "" && !(inv.Group == "pod" && inv.Sub == "logs") {
		args = append(args, "-o", inv.Output)
	}
	tty := false
	if inv.Group == "pod" && inv.Sub == "exec" {
		// exec -t wants limactl's own terminal, so ssh allocates one.
		tty = execWantsTTY(args) && f.IsTerm != nil && f.IsTerm()
	}
	code, err := f.Node.Attach(ctx, append([]string{inv.Group}, args...), f.Stdio, tty)
	if err != nil {
		return 0, err
	}
	return code, nil
}

// execWantsTTY reports whether exec's own flags (before the pod ID) ask
// for a terminal: -t, --tty, or a combined short flag such as -it.
func execWantsTTY(args []string) bool {
	positional := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			positional++
			if positional >= 2 { // "exec" and the pod ID
				return false
			}
			continue
		}
		if execValueFlags[a] {
			i++
			continue
		}
		if a == "--tty" || a == "--tty=true" {
			return true
		}
		if !strings.HasPrefix(a, "--") && strings.Contains(a[1:], "t") {
			return true
		}
	}
	return false
}

// hostFiles makes a spec file named with -f/--file on the host reach the
// node: it is sent on stdin and the argument becomes "-".
func (f *Forwarder) hostFiles(inv *Invocation, args []string) (io.Reader, error) {
	if inv.Group != "pod" || (inv.Sub != "create" && inv.Sub != "validate") {
		return nil, nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		var file string
		switch {
		case (a == "-f" || a == "--file") && i+1 < len(args):
			i++
			file = args[i]
		case strings.HasPrefix(a, "--file="):
			file = strings.TrimPrefix(a, "--file=")
		case strings.HasPrefix(a, "-f") && len(a) > 2 && !strings.HasPrefix(a, "--"):
			file = strings.TrimPrefix(a[2:], "=")
		default:
			continue
		}
		if file == "-" {
			return f.Stdio.Stdin, nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("spec file %s: %w", file, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("spec file %s: %w", file, err)
		}
		if a == "-f" || a == "--file" {
			args[i] = "-"
		} else {
			args[i] = "--file=-"
		}
		return bytes.NewReader(b), nil
	}
	return nil, nil
}

// copyHostPaths copies a host path argument the node must read (image
// import FILE|DIR, template detect DIR) into the VM, and rewrites the
// argument to the copy. The returned func removes the copy.
func (f *Forwarder) copyHostPaths(ctx context.Context, inv *Invocation, args []string) (func(), error) {
	noop := func() {}
	switch inv.Group + " " + inv.Sub {
	case "image import", "template detect":
	default:
		return noop, nil
	}
	idx := positionalIndex(args, 1)
	if idx < 0 {
		return noop, nil
	}
	src := args[idx]
	if _, err := os.Stat(src); err != nil {
		return noop, nil // not a host path: let the node judge it (a VM path)
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return noop, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	dir := "/tmp/pinacle-host-" + hex.EncodeToString(rnd[:])
	lima := f.Node.Lima
	if code, err := lima.Shell(ctx, f.Node.VM, []string{"mkdir", "-p", dir}, Stdio{Stderr: f.Stdio.Stderr}, false); err != nil || code != 0 {
		return noop, fmt.Errorf("making %s in the VM (exit %d): %v: %w", dir, code, err, errdefs.ErrUnavailable)
	}
	cleanup := func() {
		_, _ = lima.Shell(context.WithoutCancel(ctx), f.Node.VM, []string{"rm", "-rf", dir}, Stdio{}, false)
	}
	dst := path.Join(dir, filepath.Base(abs))
	if err := lima.Copy(ctx, f.Node.VM, abs, dst); err != nil {
		cleanup()
		return noop, err
	}
	args[idx] = dst
	return cleanup, nil
}

// positionalIndex returns the index of the n-th (0-based) positional
// argument, skipping flags (flags with separate values are not known
// here; the commands it serves take their path right after the verb).
func positionalIndex(args []string, n int) int {
	seen := 0
	for i, a := range args {
		if a == "--" {
			return -1
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			continue
		}
		if seen == n {
			return i
		}
		seen++
	}
	return -1
}

// showError prints a failed node command and returns its exit code.
func (f *Forwarder) showError(inv *Invocation, err error) (int, error) {
	var ne *NodeError
	var se *ExitStatusError
	switch {
	case errors.As(err, &ne):
		if inv.Output == "json" {
			b, _ := json.Marshal(ne)
			fmt.Fprintln(f.Stdio.Stderr, string(b))
		} else {
			fmt.Fprintf(f.Stdio.Stderr, "Error (%s): %s\n", ne.Code, ne.Message)
			if errors.Is(ne, errdefs.ErrUsage) {
				fmt.Fprintf(f.Stdio.Stderr, "Run 'pinacle %s --help' for usage.\n", inv.Group)
			}
		}
		return ne.ExitCode, nil
	case errors.As(err, &se):
		// No JSON error: the node did not get to run (the VM is stopped,
		// limactl or sudo failed, the binary is missing) or crashed.
		if s := strings.TrimSpace(se.Stderr); s != "" {
			fmt.Fprintln(f.Stdio.Stderr, s)
		}
		c := errdefs.Classify(errdefs.ErrUnavailable)
		msg := fmt.Sprintf("the node command in VM %q exited with status %d without a result (is the VM running? pinacle vm status)", f.Node.VM, se.ExitCode)
		if inv.Output == "json" {
			b, _ := json.Marshal(NodeError{Code: c.Code, Message: msg})
			fmt.Fprintln(f.Stdio.Stderr, string(b))
		} else {
			fmt.Fprintf(f.Stdio.Stderr, "Error (%s): %s\n", c.Code, msg)
		}
		return c.ExitCode, nil
	}
	return 0, err
}

// render shows a node result as the table of its command.
func (f *Forwarder) render(inv *Invocation, out []byte) error {
	w := f.Stdio.Stdout
	switch inv.Group + " " + inv.Sub {
	case "pod ls", "pod list":
		return RenderPods(w, out)
	case "pod create", "pod get", "pod inspect", "pod show", "pod start", "pod stop", "pod hibernate", "pod fork":
		return RenderPod(w, out)
	case "pod wake":
		if hasAny(inv.Args, "--all") { // one result per pod
			return RenderGeneric(w, out)
		}
		return RenderPod(w, out)
	case "pod delete", "pod rm":
		return RenderDeleted(w, out)
	case "pod events":
		return RenderEvents(w, out)
	case "pod metrics":
		return RenderMetrics(w, out)
	case "pod health":
		return RenderHealth(w, out)
	case "pod service":
		return RenderServices(w, out)
	case "pod url":
		return RenderURL(w, out)
	case "image ls", "image list", "image import":
		return RenderImages(w, out)
	case "template ls", "template list":
		return RenderTemplates(w, out)
	}
	return RenderGeneric(w, out)
}

func hasAny(args []string, flags ...string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		for _, f := range flags {
			if a == f || strings.HasPrefix(a, f+"=") {
				return true
			}
		}
	}
	return false
}
