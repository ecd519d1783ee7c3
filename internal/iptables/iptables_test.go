package iptables

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

// A change goes in whole or not at all, and Save sees it.
func TestRestoreSave(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for iptables")
	}
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		testenv.Missing(t, "needs iptables (hack/setup.sh installs it)")
	}
	ctx := context.Background()
	b := make([]byte, 3)
	rand.Read(b)
	chain := "PNIPT-" + strings.ToUpper(hex.EncodeToString(b))
	t.Cleanup(func() { _ = Restore(ctx, map[string][]string{"filter": {"-X " + chain}}) })

	if err := Restore(ctx, map[string][]string{"filter": {":" + chain + " - [0:0]", "-A " + chain + " -j RETURN"}}); err != nil {
		t.Fatal(err)
	}
	dump, err := Save(ctx, "-t", "filter")
	if err != nil || !strings.Contains(dump, "-A "+chain+" -j RETURN") {
		t.Fatalf("save after restore: %v\n%s", err, dump)
	}
	// A bad line fails the whole call: the flush before it does not happen.
	err = Restore(ctx, map[string][]string{"filter": {"-F " + chain, "-A " + chain + " -j NO-SUCH-TARGET"}})
	if err == nil || !strings.Contains(err.Error(), "NO-SUCH-TARGET") {
		t.Fatalf("bad restore: %v, want an error quoting the input", err)
	}
	if dump, _ := Save(ctx, "-t", "filter"); !strings.Contains(dump, "-A "+chain+" -j RETURN") {
		t.Errorf("a failed restore changed the table:\n%s", dump)
	}
	if err := Restore(ctx, map[string][]string{"filter": {"-F " + chain}}); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreUnknownTable(t *testing.T) {
	if err := Restore(context.Background(), map[string][]string{"natt": {"-A X"}}); err == nil || !strings.Contains(err.Error(), `"natt"`) {
		t.Errorf("unknown table: %v, want an error naming it", err)
	}
}
