package imagestore

import (
	"context"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// lock takes a lock on root/locks/name (shared or exclusive); ctx can
// cancel the wait.
func (s *store) lock(ctx context.Context, name string, shared bool) (*fileutil.Lock, error) {
	return fileutil.LockFile(ctx, filepath.Join(s.lockDir(), name), shared)
}

// The store-wide lock: pulls, imports and lease changes hold it shared for
// their whole run; GC holds it exclusive, so it never sees a layer that is
// committed but not yet referenced by the index.
func (s *store) lockShared(ctx context.Context) (*fileutil.Lock, error) {
	return s.lock(ctx, "store.lock", true)
}

func (s *store) lockExclusive(ctx context.Context) (*fileutil.Lock, error) {
	return s.lock(ctx, "store.lock", false)
}
