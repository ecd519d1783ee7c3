package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/node"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/oci"
)

// addConfigFlag adds --config to a command that reads node.yaml.
func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().String("config", nodeconfig.DefaultPath, "node configuration file")
}

// loadNodeConfig reads node.yaml (a missing default file means defaults;
// a command without --config reads the default file) and applies what
// flags and env override: --data-root, --runsc-root and, where the command
// has it, --socket.
func loadNodeConfig(cmd *cobra.Command) (*nodeconfig.Config, error) {
	path, named := nodeconfig.DefaultPath, false
	if f := cmd.Flags().Lookup("config"); f != nil {
		path, named = f.Value.String(), f.Changed
	}
	cfg, err := nodeconfig.Load(path, named)
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

// openRuntime returns the runsc runtime node.yaml and the flags describe
// (--runsc-root), with opts after them.
func openRuntime(cmd *cobra.Command, opts ...oci.Option) (oci.Runtime, error) {
	cfg, err := loadNodeConfig(cmd)
	if err != nil {
		return nil, err
	}
	return node.Runtime(cfg, opts...)
}
