package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/render"
)

func newPodEventsCmd() *cobra.Command {
	var (
		follow bool
		since  uint64
	)
	cmd := &cobra.Command{
		Use:   "events [ID]",
		Short: "Show pod events (state changes, OOMs, service restarts), of one pod or all",
		Long: `Show the node's event log, of one pod or of all pods. Each event has a
sequence number (SEQ); --since N shows only later ones, so a follower
that reconnects resumes where it stopped. With -o json each event is one
JSON object per line (newline-delimited), as it arrives.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			format, err := cli.OutputFormat(cmd)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if format == cli.Table {
				if err := render.EventHeader(w); err != nil {
					return err
				}
			}
			err = newClient(cmd).Events(cmd.Context(), id, since, follow, func(ev api.Event) error {
				return printEvent(w, format, ev)
			})
			if follow && errors.Is(err, context.Canceled) {
				return nil // ^C ends a follow; that is not a failure
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().Uint64Var(&since, "since", 0, "only events after this sequence number")
	return cmd
}

func printEvent(w io.Writer, format cli.Format, ev api.Event) error {
	switch format {
	case cli.JSON:
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case cli.YAML:
		b, err := yaml.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "---\n%s", b)
		return err
	}
	return render.Event(w, ev)
}

func newPodLogsCmd() *cobra.Command {
	var (
		follow bool
		tail   int
	)
	cmd := &cobra.Command{
		Use:   "logs ID [SERVICE]",
		Short: "Print a pod service's log",
		Long: `Print the log of one of a pod's services (without SERVICE: the node's
default, the pod's main service). The log is plain text; -o does not apply.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			service := ""
			if len(args) == 2 {
				service = args[1]
			}
			err := newClient(cmd).Logs(cmd.Context(), args[0], service, tail, follow, cmd.OutOrStdout())
			if follow && errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVar(&tail, "tail", -1, "print only the last N lines (-1: all)")
	return cmd
}
