package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
)

// newStatusCmd is `status`: the node's capacity, what pods and the warm
// sandbox pool hold of it. (Not `node status`: "node" is one edit from
// "pod", and a mistyped pod command would suggest it.)
func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's capacity, what pods and warm sandboxes reserve, and the warm pool's entries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := newClient(cmd).NodeStatus(cmd.Context())
			if err != nil {
				return err
			}
			return cli.Print(cmd, st, func(w io.Writer) { printNodeStatus(w, st) })
		},
	}
	addClientFlags(cmd)
	return cmd
}

func printNodeStatus(w io.Writer, st *api.NodeStatus) {
	mb := func(b int64) string { return fmt.Sprintf("%d MiB", b>>20) }
	fmt.Fprintln(w, "\tCOUNT\tCPU\tMEMORY")
	for _, r := range []struct {
		name string
		r    api.NodeResources
	}{{"capacity", st.Capacity}, {"pods", st.Pods}, {"warm", st.Warm}, {"free", st.Free}} {
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%s\n", r.name, r.r.Count, r.r.CPUCores, mb(r.r.MemoryBytes))
	}
	wp := st.WarmPool
	fmt.Fprintf(w, "\nwarm pool: enabled=%t max=%d recent=%d, holding %s memory, %s disk\n", wp.Enabled, wp.Max, wp.Recent, mb(wp.MemoryBytes), mb(wp.DiskBytes))
	if wp.LastError != "" {
		fmt.Fprintf(w, "last fill error: %s\n", wp.LastError)
	}
	if len(wp.Entries) == 0 {
		return
	}
	fmt.Fprintln(w, "ID\tSOURCE\tIMAGE\tTIER\tREADY\tAGE\tMEMORY\tDISK")
	for _, e := range wp.Entries {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", e.ID, e.Source, e.Image, e.Tier, e.Ready,
			time.Since(e.Created).Round(time.Second), mb(e.MemoryBytes), mb(e.DiskBytes))
	}
}
