package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/internal/storeadapt"
)

func testConfig(t *testing.T) *nodeconfig.Config {
	t.Helper()
	cfg, err := nodeconfig.Load(filepath.Join(t.TempDir(), "absent.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataRoot = t.TempDir()
	return cfg
}

func TestLoggerRefusesUnknownLevel(t *testing.T) {
	cfg := testConfig(t)
	if _, err := Logger(cfg); err != nil {
		t.Fatalf("default level: %v", err)
	}
	cfg.LogLevel = "chatty"
	if _, err := Logger(cfg); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("level %q: %v, want invalid argument", cfg.LogLevel, err)
	}
}

// OpenState runs the one-time import of the old JSON stores before anyone
// reads allocations: the file is retired even when it names no known pod.
func TestOpenStateMigrates(t *testing.T) {
	cfg := testConfig(t)
	old := filepath.Join(cfg.DataRoot, storeadapt.PortsFile)
	if err := os.WriteFile(old, []byte(`{"version":1,"allocations":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(context.Background(), cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(old + storeadapt.MigratedSuffix); err != nil {
		t.Fatalf("ports.json not retired: %v", err)
	}
}

// Cleanup refuses while pods remain, before it touches any host state.
func TestCleanupRefusesWhilePodsRemain(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	st, err := store.Open(ctx, filepath.Join(cfg.DataRoot, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreatePod(ctx, store.Pod{ID: "p1", Name: "web", Spec: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := Cleanup(ctx, cfg); !errdefs.IsConflict(err) {
		t.Fatalf("Cleanup with a pod left: %v, want conflict", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
