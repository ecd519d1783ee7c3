package main

import (
	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/imagestore"
)

// addRegistryFlags gives a command that may pull the same registry
// settings as `image` (openImageStore reads them).
func addRegistryFlags(cmd *cobra.Command) {
	cmd.Flags().StringArray("mirror", nil, "registry mirror HOST=URL, tried before HOST (repeatable; env "+envMirrors+")")
	cmd.Flags().StringArray("insecure-registry", nil, "registry reachable over plain http (repeatable; env "+envInsecure+")")
	cmd.Flags().Int("jobs", imagestore.DefaultJobs, "layers fetched at once")
}
