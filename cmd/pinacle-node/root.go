package main

import (
	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "pinacle-node",
		Short:         "Run development environments in gVisor sandboxes",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli.AddOutputFlag(root)
	root.PersistentFlags().String("data-root", envOr("PINACLE_DATA_ROOT", "/var/lib/pinacle"), "node data directory (env PINACLE_DATA_ROOT)")
	root.PersistentFlags().String("runsc-root", envOr("PINACLE_RUNSC_ROOT", "/run/pinacle/runsc"), "runsc state directory (env PINACLE_RUNSC_ROOT)")
	root.AddCommand(
		newImageCmd(),
		newRunCmd(),
		newTemplateCmd(),
		newInitCmd(),
		newServeCmd(),
		newPodCmd(),
		newCleanupCmd(),
		newDrainCmd(),
		newStatusCmd(),
		newWebtermCmd(),
	)
	cli.Strict(root)
	return root
}
