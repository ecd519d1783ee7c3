package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Exit codes of `pod exec` that are not the process's own (docs/cli.md).
const (
	// exitExecNode: the node (or this CLI) failed, not the process; like
	// docker's 125. The error is on stderr, as JSON under -o json.
	exitExecNode = 125
	// exitExecInterrupted: interrupted here (SIGINT/SIGTERM without a
	// terminal); the process in the pod was killed. 128+SIGINT, as a shell reports it.
	exitExecInterrupted = 130
)

func newPodExecCmd() *cobra.Command {
	var (
		interactive, tty bool
		env              []string
		cwd, user        string
	)
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] ID [--] CMD [ARG...]",
		Short: "Run a command in a pod",
		Long: `Run a command in a running pod and pass its exit code through.

-i forwards stdin to the command. -t gives it a terminal; with -i on a
local terminal, that terminal is put in raw mode (^C goes to the command)
and its size follows the window. Exit codes: the command's own; 125 when
the node could not run it (the error on stderr, JSON under -o json); 130
when interrupted here.`,
		Example: `  pinacle-node pod exec web -- ls /workspace
  pinacle-node pod exec -it web -- bash`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			command := args[1:]
			// Flags stop at ID, so a "--" after it is still here.
			if command[0] == "--" {
				command = command[1:]
			}
			if len(command) == 0 {
				return fmt.Errorf("pod exec: want a command after the pod ID: %w", errdefs.ErrInvalidArgument)
			}
			opts := api.ExecOptions{Args: command, Env: env, Cwd: cwd, User: user, Tty: tty}
			code, err := runExec(cmd, args[0], opts, interactive)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return &cli.ExitError{Code: exitExecInterrupted}
				}
				// Print the node's error the usual way, but keep 0-124 for the process.
				cli.HandleError(cmd, err)
				return &cli.ExitError{Code: exitExecNode}
			}
			if code != 0 {
				return &cli.ExitError{Code: code}
			}
			return nil
		},
	}
	// Everything after ID is the command, flags included.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "forward stdin")
	cmd.Flags().BoolVarP(&tty, "tty", "t", false, "allocate a terminal")
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "set an environment variable NAME=value (repeatable)")
	cmd.Flags().StringVarP(&cwd, "workdir", "w", "", "working directory in the pod")
	cmd.Flags().StringVarP(&user, "user", "u", "", "user (name or uid[:gid]) to run as")
	return cmd
}

func runExec(cmd *cobra.Command, id string, opts api.ExecOptions, interactive bool) (int, error) {
	ctx := cmd.Context()
	var stdin io.Reader
	if interactive {
		stdin = cmd.InOrStdin()
	}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()

	var resize chan api.Size
	if opts.Tty {
		// The size comes from whichever side is a terminal.
		sizeFd := -1
		for _, f := range []any{stdout, stdin} {
			if f, ok := f.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				sizeFd = int(f.Fd())
				break
			}
		}
		if sizeFd >= 0 {
			if w, h, err := term.GetSize(sizeFd); err == nil {
				opts.Size = api.Size{Cols: uint16(w), Rows: uint16(h)}
			}
			resize = make(chan api.Size, 1)
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-winch:
						w, h, err := term.GetSize(sizeFd)
						if err != nil {
							continue
						}
						select { // keep only the latest size
						case <-resize:
						default:
						}
						resize <- api.Size{Cols: uint16(w), Rows: uint16(h)}
					}
				}
			}()
		}
		// Raw mode: keys (^C, ^D, arrows) go to the pod's terminal as bytes.
		if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			old, err := term.MakeRaw(int(f.Fd()))
			if err != nil {
				return -1, fmt.Errorf("exec: raw terminal: %w", err)
			}
			defer term.Restore(int(f.Fd()), old)
		}
	}
	return newClient(cmd).ExecStream(ctx, id, opts, stdin, stdout, stderr, resize)
}
