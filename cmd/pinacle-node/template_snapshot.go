package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
)

// newTemplateSnapshotCmd is `template snapshot NAME`, `... ls`, `... rm KEY`:
// the daemon's template snapshots (docs/snapshots.md).
func newTemplateSnapshotCmd() *cobra.Command {
	var pod string
	cmd := &cobra.Command{
		Use:   "snapshot NAME",
		Short: "Snapshot a running, healthy pod of template NAME: later pods of it restore from the snapshot",
		Long: `Checkpoint a running pod of template NAME whose services are all healthy
(leaving it running) with a copy of its writable layer. Later pods of the
template with the same image, resources, services, environment and user
are restored from it, services already running, each with its own ID,
address, host ports and writable layer. ls lists the snapshots, rm removes one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := newClient(cmd).SnapshotTemplate(cmd.Context(), api.SnapshotRequest{Template: args[0], Pod: pod})
			if err != nil {
				return err
			}
			return printSnapshots(cmd, s, []api.Snapshot{*s})
		},
	}
	cmd.Flags().StringVar(&pod, "pod", "", "the pod to snapshot (default: any running, healthy pod of the template)")
	addClientFlags(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List template snapshots, most recently used first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := newClient(cmd).ListSnapshots(cmd.Context())
			if err != nil {
				return err
			}
			return printSnapshots(cmd, all, all)
		},
	}, &cobra.Command{
		Use:   "rm KEY",
		Short: "Remove a template snapshot (pods of the template start cold again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := newClient(cmd).RemoveSnapshot(cmd.Context(), args[0]); err != nil {
				return err
			}
			return cli.Print(cmd, map[string]string{"removed": args[0]}, func(w io.Writer) {
				fmt.Fprintln(w, "removed", args[0])
			})
		},
	})
	return cmd
}

func printSnapshots(cmd *cobra.Command, v any, rows []api.Snapshot) error {
	return cli.Print(cmd, v, func(w io.Writer) {
		fmt.Fprintln(w, "KEY\tTEMPLATE\tSIZE\tSOURCE POD\tCREATED\tLAST USED")
		for _, s := range rows {
			fmt.Fprintf(w, "%s\t%s\t%.1f MiB\t%s\t%s\t%s\n", s.Key, s.Template, float64(s.Bytes)/(1<<20), s.SourcePod,
				s.CreatedAt.Local().Format(time.DateTime), s.LastUsed.Local().Format(time.DateTime))
		}
	})
}

// newPodForkCmd is `pod fork ID --name NEW`.
func newPodForkCmd() *cobra.Command {
	var name string
	var wait bool
	cmd := &cobra.Command{
		Use:   "fork ID --name NEW",
		Short: "Make a new pod from a running one: same processes and memory, a copy of its files, its own address and ports",
		Long: `Checkpoint pod ID leaving it running, copy its writable layer, and restore
both into a new pod NEW with its own ID, network, address and host ports.
The two then run on and diverge. If the restore fails, NEW starts afresh
from the copied files and its events say so.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := newClient(cmd).Fork(cmd.Context(), args[0], api.ForkRequest{Name: name, Wait: wait})
			if err != nil {
				return err
			}
			return printPod(cmd, p)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the new pod's name (required)")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until the new pod is running (or failed)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}
