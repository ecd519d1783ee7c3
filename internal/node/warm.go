package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/errdefs"

	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/pods"
)

// warmConfig maps node.yaml's warmPool onto the pod manager's. The env
// PINACLE_WARM_FAULT=claim makes every claim fail (the e2e tests' seam for
// the fallback to a cold create).
func warmConfig(cfg *nodeconfig.Config) pods.WarmConfig {
	w := pods.WarmConfig{FailClaims: os.Getenv("PINACLE_WARM_FAULT") == "claim"}
	if cfg.WarmPool.Recent != nil {
		w.Recent = *cfg.WarmPool.Recent
	}
	if cfg.WarmPool.Max != nil {
		w.Max = *cfg.WarmPool.Max
	}
	for _, e := range cfg.WarmPool.Entries {
		w.Shapes = append(w.Shapes, pods.WarmShape{Template: e.Template, Image: e.Image, Tier: e.Tier, Count: e.Count})
	}
	return w
}

// removeWarmLeftovers tears down the warm sandboxes a daemon killed
// without its drain left behind (their records under dataRoot/warm), as
// the daemon's own start would.
func removeWarmLeftovers(ctx context.Context, cfg *nodeconfig.Config) error {
	des, err := os.ReadDir(filepath.Join(cfg.DataRoot, "warm"))
	if err != nil || len(des) == 0 {
		return nil // none (or no directory): nothing to do
	}
	n, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("removing warm sandboxes: %w", err)
	}
	defer n.Close()
	n.Pods.RemoveWarmLeftovers(ctx)
	if left, _ := os.ReadDir(filepath.Join(cfg.DataRoot, "warm")); len(left) > 0 {
		return fmt.Errorf("%d warm sandboxes could not be removed (see the daemon's log on its next start): %w", len(left), errdefs.ErrUnavailable)
	}
	return nil
}
