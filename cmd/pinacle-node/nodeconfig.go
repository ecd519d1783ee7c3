package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/nodeconfig"
)

// addConfigFlag adds --config to a command that reads node.yaml.
func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", nodeconfig.DefaultPath, "node configuration file")
}

// loadNodeConfig reads node.yaml (a missing default file means defaults)
// and applies what flags and env override: --data-root, --runsc-root and,
// where the command has it, --socket.
func loadNodeConfig(cmd *cobra.Command) (*nodeconfig.Config, error) {
	path, _ := cmd.Flags().GetString("config")
	cfg, err := nodeconfig.Load(path, cmd.Flags().Changed("config"))
	if err != nil {
		return nil, err
	}
	override := func(flag, env string, dst *string) {
		if f := cmd.Flags().Lookup(flag); f != nil && (f.Changed || os.Getenv(env) != "") {
			*dst = f.Value.String()
		}
	}
	override("data-root", "PINACLE_DATA_ROOT", &cfg.DataRoot)
	override("runsc-root", "PINACLE_RUNSC_ROOT", &cfg.RunscRoot)
	override("socket", "PINACLE_SOCKET", &cfg.Socket)
	return cfg, nil
}
