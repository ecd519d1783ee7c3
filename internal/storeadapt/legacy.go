package storeadapt

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/portfwd"
)

// The JSON files the node kept allocations in before state.db, as the
// standalone stores (portfwd.FileStore, netns.FileSubnetStore) wrote them:
// only Migrate reads them now, once.

// legacyPortsFile is ports.json.
type legacyPortsFile struct {
	Version     int                  `json:"version"`
	Allocations []portfwd.Allocation `json:"allocations"`
}

const legacyPortsVersion = 1

// legacySubnetsFile is netns/subnets.json: owner -> subnet.
type legacySubnetsFile struct {
	Subnets map[string]netip.Prefix `json:"subnets"`
}

// readLegacy decodes path strictly into v under a shared flock on
// path+".lock", the lock the old stores wrote under.
func readLegacy(ctx context.Context, path string, v any) error {
	lk, err := fileutil.LockFile(ctx, path+lockSuffix, true)
	if err != nil {
		return err
	}
	defer lk.Unlock()
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := fileutil.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("decode %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// readLegacyPorts returns ports.json's allocations in file order.
func readLegacyPorts(ctx context.Context, path string) ([]portfwd.Allocation, error) {
	var f legacyPortsFile
	if err := readLegacy(ctx, path, &f); err != nil {
		return nil, err
	}
	if f.Version != legacyPortsVersion {
		return nil, fmt.Errorf("%s: version %d, want %d: %w", path, f.Version, legacyPortsVersion, errdefs.ErrInvalidArgument)
	}
	return f.Allocations, nil
}

// readLegacySubnets returns subnets.json's reservations sorted by owner.
func readLegacySubnets(ctx context.Context, path string) ([]netns.Used, error) {
	var f legacySubnetsFile
	if err := readLegacy(ctx, path, &f); err != nil {
		return nil, err
	}
	out := make([]netns.Used, 0, len(f.Subnets))
	for o, p := range f.Subnets {
		out = append(out, netns.Used{Prefix: p, Owner: o})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Owner < out[j].Owner })
	return out, nil
}
