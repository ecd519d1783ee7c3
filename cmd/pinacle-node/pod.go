package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/render"
)

// newPodCmd is `pinacle-node pod`: the client commands that drive a node
// daemon's pods over its socket (docs/cli.md, docs/api.md).
func newPodCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pod",
		Short: "Create, inspect and control pods on the node (through the daemon's socket)",
	}
	addClientFlags(cmd)
	cmd.AddCommand(
		newPodCreateCmd(),
		newPodLsCmd(),
		newPodGetCmd(),
		newPodLifecycleCmd("start", "Start a stopped pod"),
		newPodLifecycleCmd("stop", "Stop a pod's sandbox, keeping its workspace and ports"),
		newPodDeleteCmd(),
		newPodHibernateCmd(),
		newPodForkCmd(),
		newPodWakeCmd(),
		newPodEventsCmd(),
		newPodLogsCmd(),
		newPodExecCmd(),
		newPodMetricsCmd(),
		newPodHealthCmd(),
		newPodServiceCmd(),
		newPodURLCmd(),
		newPodValidateCmd(),
	)
	return cmd
}

func newPodLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List pods",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := newClient(cmd).List(cmd.Context())
			if err != nil {
				return err
			}
			slices.SortFunc(ps, func(a, b *api.Pod) int { return a.CreatedAt.Compare(b.CreatedAt) })
			fillURLs(cmd, ps...)
			if ps == nil {
				ps = []*api.Pod{}
			}
			return cli.Print(cmd, ps, func(w io.Writer) { render.Pods(w, ps, time.Now()) })
		},
	}
}

func newPodGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "get ID",
		Aliases: []string{"inspect", "show"},
		Short:   "Show a pod (by ID or name)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newClient(cmd).Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printPod(cmd, p)
		},
	}
}

// newPodLifecycleCmd is `pod start ID` or `pod stop ID`.
func newPodLifecycleCmd(op, short string) *cobra.Command {
	return &cobra.Command{
		Use:   op + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient(cmd)
			var p *api.Pod
			var err error
			if op == "start" {
				p, err = c.Start(cmd.Context(), args[0])
			} else {
				p, err = c.Stop(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			return printPod(cmd, p)
		},
	}
}

// deleteResult is one line of `pod delete -o json`.
type deleteResult struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	Error   string `json:"error,omitempty"`
}

func newPodDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID...",
		Aliases: []string{"rm"},
		Short:   "Delete pods and everything they hold (workspace, ports, network)",
		Long: `Delete one or more pods. Every pod is tried; the exit code is that of
the first failure's class (docs/cli.md), or 0 when all were deleted.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newClient(cmd)
			var errs []error
			var res []deleteResult
			for _, id := range args {
				if err := c.Delete(cmd.Context(), id); err != nil {
					errs = append(errs, err)
					res = append(res, deleteResult{ID: id, Error: err.Error()})
					continue
				}
				res = append(res, deleteResult{ID: id, Deleted: true})
			}
			if err := cli.Print(cmd, res, func(w io.Writer) {
				for _, r := range res {
					if r.Deleted {
						fmt.Fprintf(w, "deleted %s\n", r.ID)
					}
				}
			}); err != nil {
				return err
			}
			return joinErrors(errs)
		},
	}
}

// joinErrors keeps a single error as is, so its message reads plainly.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return &multiError{errs}
}

// multiError classifies as its first error (errdefs.Classify takes the
// first class that matches, in its own order; ours is the first failure).
type multiError struct{ errs []error }

func (m *multiError) Error() string {
	var b strings.Builder
	for i, e := range m.errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (m *multiError) Unwrap() error { return m.errs[0] }

// printPod prints one pod: all of it as JSON/YAML, a summary as a table.
func printPod(cmd *cobra.Command, p *api.Pod) error {
	fillURLs(cmd, p)
	return cli.Print(cmd, p, func(w io.Writer) { render.Pod(w, p, time.Now()) })
}
