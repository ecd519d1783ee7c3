package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/hostcli"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// Environment variables of the host CLI.
const (
	envVM           = "PINACLE_VM"             // --vm
	envNodeSocket   = "PINACLE_NODE_SOCKET"    // --node-socket
	envNodeDataRoot = "PINACLE_NODE_DATA_ROOT" // --node-data-root
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pinacle",
		Short: "Run development environments in gVisor sandboxes, in a Lima VM on this machine",
		Long: `pinacle runs the pinacle node in a Lima VM ("pinacle vm") and forwards
pod, image and template commands to it (limactl shell VM sudo pinacle-node
... -o json), showing the results as tables. Pod URLs are
http://127.0.0.1:PORT on this machine: Lima forwards the VM's ports
30000-40000 here. limactl is $LIMACTL or "limactl" from PATH.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cli.AddOutputFlag(root)
	pf := root.PersistentFlags()
	pf.String(hostcli.FlagVM, envOr(envVM, "pinacle"), "Lima VM that runs the node (env "+envVM+")")
	pf.String(hostcli.FlagNodeSocket, os.Getenv(envNodeSocket), "node API socket in the VM, if not the default (env "+envNodeSocket+")")
	pf.String(hostcli.FlagNodeDataRoot, os.Getenv(envNodeDataRoot), "node data root in the VM, if not the default (env "+envNodeDataRoot+")")
	root.AddCommand(
		newVMCmd(),
		newForwardCmd("pod", "Create, inspect and control pods (pinacle-node pod ...)"),
		newForwardCmd("image", "Manage the node's images (pinacle-node image ...)"),
		newForwardCmd("template", "Show pod templates (pinacle-node template ...)"),
	)
	cli.Strict(root)
	return root
}
