package main

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/hostcli"
)

// newForwardCmd is a command group run on the node: `pinacle GROUP ARGS`
// becomes `limactl shell VM sudo pinacle-node GROUP ARGS -o json`. Its
// flags are the node's (see pinacle GROUP --help), except --vm, -o,
// --node-socket and --node-data-root, which are the host's.
func newForwardCmd(group, short string) *cobra.Command {
	return &cobra.Command{
		Use:                group + " ...",
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := hostcli.ParseForward(group, args)
			if err != nil {
				return err
			}
			// Flags given before the group word were parsed by cobra's root.
			root := cmd.Root().PersistentFlags()
			pick := func(v *string, flag string) {
				if *v == "" {
					*v, _ = root.GetString(flag)
				}
			}
			pick(&inv.VM, hostcli.FlagVM)
			pick(&inv.Output, hostcli.FlagOutput)
			pick(&inv.NodeSocket, hostcli.FlagNodeSocket)
			pick(&inv.NodeDataRoot, hostcli.FlagNodeDataRoot)
			if inv.Output != "" {
				// So errors of the host side print the way -o asks.
				_ = cmd.Root().PersistentFlags().Set(hostcli.FlagOutput, inv.Output)
			}
			if inv.Output == "table" || inv.Output == "wide" {
				inv.Output = ""
			}
			lima, err := hostcli.NewLimactl()
			if err != nil {
				return err
			}
			node := &hostcli.Node{Lima: lima, VM: inv.VM}
			if inv.NodeSocket != "" {
				node.Env = append(node.Env, "PINACLE_SOCKET="+inv.NodeSocket)
			}
			if inv.NodeDataRoot != "" {
				node.Env = append(node.Env, "PINACLE_DATA_ROOT="+inv.NodeDataRoot)
			}
			f := &hostcli.Forwarder{
				Node:  node,
				Stdio: hostcli.Stdio{Stdin: os.Stdin, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()},
				IsTerm: func() bool {
					return term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
				},
				Open: cli.OpenBrowser,
			}
			code, err := f.Run(cmd.Context(), inv)
			if err != nil {
				return err
			}
			if code != 0 {
				return &cli.ExitError{Code: code}
			}
			return nil
		},
	}
}
