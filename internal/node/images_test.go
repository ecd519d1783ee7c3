package node

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinacle/pinacle-node/internal/nodeconfig"
)

// A lease write cut short by a SIGKILL leaves ".<holder>.json.tmpN" in the
// leases dir; the node's start removes it and keeps the real leases.
func TestOpenImagesRemovesLeaseTemps(t *testing.T) {
	cfg := &nodeconfig.Config{DataRoot: t.TempDir()}
	cfg.Default()
	leases := filepath.Join(cfg.DataRoot, "leases")
	if err := os.MkdirAll(leases, 0o700); err != nil {
		t.Fatal(err)
	}
	temp, lease := filepath.Join(leases, ".p1.json.tmp4242"), filepath.Join(leases, "p2.json")
	for _, p := range []string{temp, lease} {
		if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := openImages(context.Background(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(temp); !os.IsNotExist(err) {
		t.Errorf("the dead writer's temporary file is still there (stat: %v)", err)
	}
	if _, err := os.Stat(lease); err != nil {
		t.Errorf("a real lease was removed: %v", err)
	}
}
