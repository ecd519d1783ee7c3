package storeadapt

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
)

// subnetStore is a netns.SubnetStore on the store's subnet allocations.
type subnetStore struct {
	st   *store.Store
	pool netip.Prefix
	bits int
}

var _ netns.SubnetStore = (*subnetStore)(nil)

// SubnetStore returns a netns.SubnetStore that keeps reservations in st,
// allocating /bits subnets from pool. Give it the pool and size given to
// netns.WithPool. Reserve decides as netns's in-memory store does
// (netns.CheckSubnet for a wanted subnet, netns.AllocateSubnet otherwise),
// inside one store transaction. The owner is a pod ID whose record must
// exist (ErrNotFound); DeletePod releases its subnet.
func SubnetStore(st *store.Store, pool netip.Prefix, bits int) (netns.SubnetStore, error) {
	if st == nil {
		return nil, fmt.Errorf("subnet store: state store required: %w", errdefs.ErrInvalidArgument)
	}
	// The pool and size netns.WithPool accepts.
	if !pool.IsValid() || !pool.Addr().Is4() {
		return nil, fmt.Errorf("subnet pool %s: must be IPv4: %w", pool, errdefs.ErrInvalidArgument)
	}
	if bits < pool.Bits() || bits > 30 {
		return nil, fmt.Errorf("pod subnet size /%d: must be within pool /%d and /30: %w", bits, pool.Bits(), errdefs.ErrInvalidArgument)
	}
	return &subnetStore{st: st, pool: pool.Masked(), bits: bits}, nil
}

func (s *subnetStore) Reserve(ctx context.Context, owner string, want netip.Prefix, reserved []netns.Used) (netip.Prefix, error) {
	alloc := s.st.AllocateSubnetWith
	if netns.IsWarm(owner) {
		alloc = s.st.ReserveSubnetWith // the warm pool's, not a pod's
	}
	got, err := alloc(ctx, owner, func(taken []store.SubnetAllocation) (netip.Prefix, error) {
		used := slices.Clone(reserved)
		for _, t := range taken {
			used = append(used, netns.Used{Prefix: t.Prefix, Owner: "pod " + t.PodID})
		}
		if want.IsValid() {
			return want, netns.CheckSubnet(want, s.pool, used)
		}
		return netns.AllocateSubnet(s.pool, s.bits, used)
	})
	if err != nil {
		return netip.Prefix{}, err
	}
	// The store hands back an existing reservation without asking the
	// picker; a different wanted subnet is then a conflict, as in the
	// file store.
	if want.IsValid() && got != want {
		return netip.Prefix{}, fmt.Errorf("%s already holds subnet %s, not %s: %w", owner, got, want, errdefs.ErrConflict)
	}
	return got, nil
}

func (s *subnetStore) Release(ctx context.Context, owner string) error {
	return s.st.ReleaseSubnet(ctx, owner)
}

func (s *subnetStore) List(ctx context.Context) ([]netns.Used, error) {
	all, err := s.st.ListSubnets(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]netns.Used, len(all))
	for i, a := range all {
		out[i] = netns.Used{Prefix: a.Prefix, Owner: a.PodID}
	}
	slices.SortFunc(out, func(a, b netns.Used) int { return strings.Compare(a.Owner, b.Owner) })
	return out, nil
}
