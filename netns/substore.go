package netns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// SubnetStore persists which pod owns which subnet. The node's is
// internal/storeadapt's, on state.db.
type SubnetStore interface {
	// Reserve gives owner a subnet: want if valid (checked with CheckSubnet),
	// else one allocated from the pool. reserved lists extra taken ranges
	// (host routes) that are not persisted. Reserving again for the same
	// owner returns its existing subnet if compatible.
	Reserve(ctx context.Context, owner string, want netip.Prefix, reserved []Used) (netip.Prefix, error)
	// Release frees owner's subnet; releasing nothing is success.
	Release(ctx context.Context, owner string) error
	// List returns every reservation.
	List(ctx context.Context) ([]Used, error)
}

// memSubnetStore is the SubnetStore of a Manager given none: reservations
// live as long as the process. Enough for tests and for a Manager that
// only removes node rules (cleanup); the daemon gives its own.
type memSubnetStore struct {
	pool netip.Prefix
	bits int

	mu      sync.Mutex
	subnets map[string]netip.Prefix // owner -> subnet
}

var _ SubnetStore = (*memSubnetStore)(nil)

func newMemSubnetStore(pool netip.Prefix, bits int) *memSubnetStore {
	return &memSubnetStore{pool: pool.Masked(), bits: bits, subnets: map[string]netip.Prefix{}}
}

func (s *memSubnetStore) Reserve(_ context.Context, owner string, want netip.Prefix, reserved []Used) (netip.Prefix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if have, ok := s.subnets[owner]; ok {
		if want.IsValid() && want != have {
			return netip.Prefix{}, fmt.Errorf("%s already holds subnet %s, not %s: %w", owner, have, want, errdefs.ErrConflict)
		}
		return have, nil
	}
	used := slices.Clone(reserved)
	for o, p := range s.subnets {
		used = append(used, Used{Prefix: p, Owner: "pod " + o})
	}
	got, err := want, error(nil)
	if want.IsValid() {
		err = CheckSubnet(want, s.pool, used)
	} else {
		got, err = AllocateSubnet(s.pool, s.bits, used)
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	s.subnets[owner] = got
	return got, nil
}

func (s *memSubnetStore) Release(_ context.Context, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subnets, owner)
	return nil
}

func (s *memSubnetStore) List(_ context.Context) ([]Used, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Used, 0, len(s.subnets))
	for o, p := range s.subnets {
		out = append(out, Used{Prefix: p, Owner: o})
	}
	slices.SortFunc(out, func(a, b Used) int { return strings.Compare(a.Owner, b.Owner) })
	return out, nil
}
