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
		newPodEventsCmd(),
		newPodLogsCmd(),
		newPodExecCmd(),
		newPodMetricsCmd(),
		newPodHealthCmd(),
		newPodServiceCmd(),
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
			return cli.Print(cmd, ps, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tSTATE\tTEMPLATE\tIP\tPORTS\tAGE")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.State, dash(p.Template), dash(p.IP), dash(portsSummary(p)), shortAge(p.CreatedAt))
				}
			})
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
	return cli.Print(cmd, p, func(w io.Writer) { podTable(w, p) })
}

func podTable(w io.Writer, p *api.Pod) {
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	kv("ID", p.ID)
	kv("Name", p.Name)
	state := string(p.State)
	if p.Reason != "" {
		state += " (" + p.Reason + ")"
	}
	kv("State", state)
	kv("Template", p.Template)
	kv("Image", p.Image)
	kv("IP", p.IP)
	if !p.CreatedAt.IsZero() {
		kv("Created", p.CreatedAt.Local().Format(time.RFC3339)+" ("+shortAge(p.CreatedAt)+" ago)")
	}
	for _, port := range p.Ports {
		target := port.URL
		if target == "" && port.External > 0 {
			target = fmt.Sprintf("host port %d", port.External)
		}
		fmt.Fprintf(w, "Port %s:\t%d -> %s\n", port.Name, port.Internal, dash(target))
	}
	for _, s := range p.Services {
		fmt.Fprintf(w, "Service %s:\t%s (restarts %d)\n", s.Name, serviceState(s), s.Restarts)
	}
}

func portsSummary(p *api.Pod) string {
	var parts []string
	for _, port := range p.Ports {
		if port.External > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d->%d", port.Name, port.Internal, port.External))
		} else {
			parts = append(parts, fmt.Sprintf("%s:%d", port.Name, port.Internal))
		}
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortAge is a compact age for tables: 45s, 12m, 5h, 3d.
func shortAge(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// serviceState is a service's state, with its health when that says more
// (a running service whose check is failing, say).
func serviceState(s api.ServiceInfo) string {
	st := string(s.State)
	if s.Health != "" && string(s.Health) != st {
		st += ", health " + string(s.Health)
	}
	return st
}
