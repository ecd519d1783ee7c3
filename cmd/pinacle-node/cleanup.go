package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/pods"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd/dnat"
)

// newCleanupCmd removes the node-level host state that outlives the
// daemon (its iptables chains, runsc's netns pin), once no pod remains.
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
			ctx := cmd.Context()
			st, err := store.Open(ctx, filepath.Join(cfg.DataRoot, store.FileName))
			if err != nil {
				return fmt.Errorf("%w (stop pinacle-node serve first)", err)
			}
			remaining, err := st.ListPods(ctx)
			st.Close()
			if err != nil {
				return err
			}
			if len(remaining) > 0 {
				return fmt.Errorf("%d pods remain; delete them first: %w", len(remaining), errdefs.ErrConflict)
			}
			pool, _ := netip.ParsePrefix(cfg.Network.Pool)
			nm, err := netns.New(netns.WithStateDir(filepath.Join(cfg.DataRoot, "netns")), netns.WithPool(pool, cfg.Network.SubnetBits))
			if err != nil {
				return err
			}
			if err := nm.RemoveNodeRules(ctx); err != nil {
				return err
			}
			// The port forwarder's DNAT chains (kept while another node
			// on this host still has pod rules in them).
			listen, err := netip.ParseAddr(cfg.Ports.ListenAddr)
			if err != nil || !listen.Unmap().Is4() {
				listen = netip.IPv4Unspecified()
			}
			if err := dnat.Cleanup(ctx, dnatOptions(cfg, listen, slog.New(slog.DiscardHandler))...); err != nil {
				return err
			}
			if err := oci.ReleaseRoot(cfg.RunscRoot); err != nil {
				return err
			}
			// The pods' parent cgroup, unless another node on this host
			// still has pods in it.
			if err := oci.RemoveCgroupIfUnused(pods.CgroupParent); err != nil {
				return fmt.Errorf("cgroup %s: %w", pods.CgroupParent, err)
			}
			res := map[string]any{"removed": []string{"iptables node chains", "port forwarding chains", cfg.RunscRoot + "/null-netns", "cgroup " + pods.CgroupParent}}
			return cli.Print(cmd, res, func(w io.Writer) { fmt.Fprintln(w, "node-level state removed") })
		},
	}
	addConfigFlag(cmd)
	return cmd
}
