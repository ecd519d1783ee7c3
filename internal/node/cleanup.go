package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd/dnat"
)

// Cleanup removes the node-level host state that outlives the daemon, once
// no pod remains (ErrConflict otherwise), and names what it removed: the
// network's iptables node chains, the port forwarder's DNAT chains,
// runsc's null-netns pin and the pods' parent cgroup. The daemon must be
// stopped: state.db is locked while it runs. Each removal is idempotent
// and keeps what another node on this host still uses.
func Cleanup(ctx context.Context, cfg *nodeconfig.Config) ([]string, error) {
	if err := noPodsRemain(ctx, cfg); err != nil {
		return nil, err
	}
	if err := removeWarmLeftovers(ctx, cfg); err != nil {
		return nil, err
	}
	pool, err := netip.ParsePrefix(cfg.Network.Pool)
	if err != nil {
		return nil, fmt.Errorf("network.pool %q: %w", cfg.Network.Pool, errdefs.ErrInvalidArgument)
	}
	nm, err := netns.New(netns.WithStateDir(netnsDir(cfg)), netns.WithPool(pool, cfg.Network.SubnetBits))
	if err != nil {
		return nil, err
	}
	if err := nm.RemoveNodeRules(ctx); err != nil {
		return nil, err
	}
	// The port forwarder's DNAT chains (kept while another node on this
	// host still has pod rules in them).
	listen, err := netip.ParseAddr(cfg.Ports.ListenAddr)
	if err != nil || !listen.Unmap().Is4() {
		listen = netip.IPv4Unspecified() // no kernel path was possible; the owner finds the chains
	}
	if err := dnat.Cleanup(ctx, dnatOptions(cfg, listen, slog.New(slog.DiscardHandler))...); err != nil {
		return nil, err
	}
	if err := oci.ReleaseRoot(cfg.RunscRoot); err != nil {
		return nil, err
	}
	// The pods' parent cgroup, unless another node on this host still has
	// pods in it.
	if err := oci.RemoveCgroupIfUnused(cfg.CgroupParent); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cfg.CgroupParent, err)
	}
	return []string{"iptables node chains", "port forwarding chains", cfg.RunscRoot + "/null-netns", "cgroup " + cfg.CgroupParent}, nil
}

func noPodsRemain(ctx context.Context, cfg *nodeconfig.Config) error {
	st, err := store.Open(ctx, filepath.Join(cfg.DataRoot, store.FileName))
	if err != nil {
		return fmt.Errorf("%w (stop pinacle-node serve first)", err)
	}
	defer st.Close()
	remaining, err := st.ListPods(ctx)
	if err != nil {
		return err
	}
	if len(remaining) > 0 {
		return fmt.Errorf("%d pods remain; delete them first: %w", len(remaining), errdefs.ErrConflict)
	}
	return nil
}
