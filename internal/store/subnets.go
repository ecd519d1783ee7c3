package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// SubnetAllocation is the subnet owned by one pod (or one warm network).
type SubnetAllocation struct {
	PodID  string       `json:"podId"`
	Prefix netip.Prefix `json:"prefix"`
}

func mustExist(tx *bolt.Tx, podID string) error {
	if tx.Bucket(bucketPods).Get([]byte(podID)) == nil {
		return fmt.Errorf("pod %s: %w", podID, errdefs.ErrNotFound)
	}
	return nil
}

// AllocateSubnetWith gives the pod a subnet and persists it. It is stable:
// the pod's existing subnet, if any, is returned without calling pick.
// Otherwise pick chooses, given the subnets in use (sorted by address) and
// which pod holds each, so that its errors can name the holder (netns's
// CheckSubnet does); it runs inside the write transaction, and its choice
// must be a masked prefix that overlaps none in use. The pod must exist
// (ErrNotFound), so no subnet outlives its pod: DeletePod releases it.
func (s *Store) AllocateSubnetWith(ctx context.Context, podID string, pick func(used []SubnetAllocation) (netip.Prefix, error)) (netip.Prefix, error) {
	return s.allocateSubnet(ctx, podID, true, pick)
}

// ReserveSubnetWith is AllocateSubnetWith for an owner that is not a pod
// (the network layer's warm pool): no pod record is required, and
// deleting a pod never frees it; ReleaseSubnet does.
func (s *Store) ReserveSubnetWith(ctx context.Context, owner string, pick func(used []SubnetAllocation) (netip.Prefix, error)) (netip.Prefix, error) {
	return s.allocateSubnet(ctx, owner, false, pick)
}

func (s *Store) allocateSubnet(ctx context.Context, podID string, isPod bool, pick func(used []SubnetAllocation) (netip.Prefix, error)) (netip.Prefix, error) {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return netip.Prefix{}, err
	}
	if pick == nil {
		return netip.Prefix{}, fmt.Errorf("pod %s subnet: no picker: %w", podID, errdefs.ErrInvalidArgument)
	}
	var out netip.Prefix
	err := s.update(ctx, func(t *txn) error {
		if isPod {
			if err := mustExist(t.Tx, podID); err != nil {
				return err
			}
		}
		subnets, owners := t.Bucket(bucketSubnets), t.Bucket(bucketSubnetOwn)
		if cur := subnets.Get([]byte(podID)); cur != nil {
			var err error
			out, err = netip.ParsePrefix(string(cur))
			return err
		}
		var used []SubnetAllocation
		if err := subnets.ForEach(func(k, v []byte) error {
			p, err := netip.ParsePrefix(string(v))
			if err != nil {
				return fmt.Errorf("subnet of pod %s: corrupt: %w", k, err)
			}
			used = append(used, SubnetAllocation{PodID: string(k), Prefix: p})
			return nil
		}); err != nil {
			return err
		}
		slices.SortFunc(used, func(a, b SubnetAllocation) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
		p, err := pick(used)
		if err != nil {
			return fmt.Errorf("pod %s subnet: %w", podID, err)
		}
		if !p.IsValid() || p != p.Masked() {
			return fmt.Errorf("pod %s subnet: picker chose %v, which is not a masked prefix", podID, p)
		}
		for _, u := range used {
			if u.Prefix.Overlaps(p) {
				return fmt.Errorf("pod %s subnet %v overlaps %v of pod %s: %w", podID, p, u.Prefix, u.PodID, errdefs.ErrConflict)
			}
		}
		if err := subnets.Put([]byte(podID), []byte(p.String())); err != nil {
			return err
		}
		out = p
		return owners.Put([]byte(p.String()), []byte(podID))
	})
	if err != nil {
		return netip.Prefix{}, err
	}
	return out, nil
}

// ReleaseSubnet frees the pod's subnet. Releasing what is not held succeeds.
func (s *Store) ReleaseSubnet(ctx context.Context, podID string) error {
	return s.update(ctx, func(t *txn) error {
		_, err := releaseSubnet(t.Tx, podID)
		return err
	})
}

func releaseSubnet(tx *bolt.Tx, podID string) (bool, error) {
	subnets := tx.Bucket(bucketSubnets)
	cur := subnets.Get([]byte(podID))
	if cur == nil {
		return false, nil
	}
	if err := tx.Bucket(bucketSubnetOwn).Delete(slices.Clone(cur)); err != nil {
		return false, err
	}
	return true, subnets.Delete([]byte(podID))
}

// ListSubnets returns every subnet allocation, sorted by address.
func (s *Store) ListSubnets(ctx context.Context) ([]SubnetAllocation, error) {
	var out []SubnetAllocation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubnetOwn).ForEach(func(k, v []byte) error {
			p, err := netip.ParsePrefix(string(k))
			if err != nil {
				return fmt.Errorf("subnet %q: corrupt: %w", k, err)
			}
			out = append(out, SubnetAllocation{PodID: string(v), Prefix: p})
			return nil
		})
	})
	slices.SortFunc(out, func(a, b SubnetAllocation) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out, err
}
