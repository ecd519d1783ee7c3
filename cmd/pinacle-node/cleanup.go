package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/node"
)

// newCleanupCmd removes the node-level host state that outlives the
// daemon (node.Cleanup says what), once no pod remains.
func newCleanupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove node-level host state (iptables chains, runsc root pin) when no pods remain; the daemon must be stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadNodeConfig(cmd)
			if err != nil {
				return err
			}
			removed, err := node.Cleanup(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			res := map[string]any{"removed": removed}
			return cli.Print(cmd, res, func(w io.Writer) { fmt.Fprintln(w, "node-level state removed") })
		},
	}
	addConfigFlag(cmd)
	return cmd
}
