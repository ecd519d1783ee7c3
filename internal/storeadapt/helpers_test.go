package storeadapt

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/pinacle/pinacle-node/internal/store"
)

// Subnets in these tests come from 10.214.0.0/16 and host ports from
// 25100-25199, the ranges this package was given (no other helper's).
var testPool = netip.MustParsePrefix("10.214.0.0/24")

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// boltAt opens the state store at path and closes it when the test ends
// (Close is idempotent, so a test may close it earlier to reopen).
func boltAt(t testing.TB, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func boltTemp(t testing.TB) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), store.FileName)
	return boltAt(t, path), path
}

// createPods makes pod records, which the adapters require.
func createPods(t testing.TB, st *store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := st.CreatePod(context.Background(), store.Pod{ID: id, Name: "n-" + id, Spec: json.RawMessage(`{}`)}); err != nil {
			t.Fatalf("CreatePod(%s): %v", id, err)
		}
	}
}
