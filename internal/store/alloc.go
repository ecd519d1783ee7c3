package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// PortAllocation is one host port owned by one named port of one pod.
type PortAllocation struct {
	PodID    string `json:"podId"`
	Name     string `json:"name"`
	HostPort int    `json:"hostPort"`
}

// SubnetAllocation is the subnet owned by one pod.
type SubnetAllocation struct {
	PodID  string       `json:"podId"`
	Prefix netip.Prefix `json:"prefix"`
}

// PortStore is the persistence a host-port allocator (portfwd) plugs into.
type PortStore interface {
	AllocatePort(ctx context.Context, podID, name string, want int, pick func(used map[int]bool) (int, error)) (int, error)
	ReleasePort(ctx context.Context, podID, name string) error
	ReleasePorts(ctx context.Context, podID string) error
	ListPortAllocations(ctx context.Context, podID string) ([]PortAllocation, error)
}

// SubnetStore is the persistence a pod-subnet allocator (netns) plugs into.
type SubnetStore interface {
	AllocateSubnet(ctx context.Context, podID string, pick func(used []netip.Prefix) (netip.Prefix, error)) (netip.Prefix, error)
	ReleaseSubnet(ctx context.Context, podID string) error
	ListSubnets(ctx context.Context) ([]SubnetAllocation, error)
}

var (
	_ PortStore   = (*Store)(nil)
	_ SubnetStore = (*Store)(nil)
)

// '/' cannot occur in a pod ID or port name (errdefs.ValidateID), so it
// separates them unambiguously and keeps a pod's ports adjacent.
func portKey(podID, name string) []byte { return []byte(podID + "/" + name) }

func portBytes(p int) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, uint16(p))
	return b
}

func mustExist(tx *bolt.Tx, podID string) error {
	if tx.Bucket(bucketPods).Get([]byte(podID)) == nil {
		return fmt.Errorf("pod %s: %w", podID, errdefs.ErrNotFound)
	}
	return nil
}

// AllocatePort gives the pod's port name a host port and persists it. It
// is stable: if the pod already holds a port for name, that port is
// returned. want > 0 asks for a specific port (ErrConflict if another pod
// holds it); want 0 lets pick choose from the ports in use. pick runs
// inside the write transaction: keep it short. The pod must exist, so no
// allocation outlives its pod (DeletePod releases them).
func (s *Store) AllocatePort(ctx context.Context, podID, name string, want int, pick func(used map[int]bool) (int, error)) (int, error) {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return 0, err
	}
	if err := errdefs.ValidateID("port name", name); err != nil {
		return 0, err
	}
	if want < 0 || want > 65535 {
		return 0, fmt.Errorf("pod %s port %s: host port %d: must be 1-65535 (or 0 for any): %w", podID, name, want, errdefs.ErrInvalidArgument)
	}
	if want == 0 && pick == nil {
		return 0, fmt.Errorf("pod %s port %s: no port wanted and no picker: %w", podID, name, errdefs.ErrInvalidArgument)
	}
	var port int
	err := s.update(ctx, func(t *txn) error {
		if err := mustExist(t.Tx, podID); err != nil {
			return err
		}
		ports, owners := t.Bucket(bucketPorts), t.Bucket(bucketPortOwners)
		key := portKey(podID, name)
		if cur := ports.Get(key); cur != nil {
			port = int(binary.BigEndian.Uint16(cur))
			if want != 0 && want != port {
				return fmt.Errorf("pod %s port %s already has host port %d, not %d: %w", podID, name, port, want, errdefs.ErrConflict)
			}
			return nil
		}
		if want != 0 {
			if owner := owners.Get(portBytes(want)); owner != nil {
				return fmt.Errorf("host port %d: in use by %s: %w", want, owner, errdefs.ErrConflict)
			}
			port = want
		} else {
			used := map[int]bool{}
			if err := owners.ForEach(func(k, _ []byte) error {
				used[int(binary.BigEndian.Uint16(k))] = true
				return nil
			}); err != nil {
				return err
			}
			p, err := pick(used)
			if err != nil {
				return fmt.Errorf("pod %s port %s: %w", podID, name, err)
			}
			if p < 1 || p > 65535 || used[p] {
				return fmt.Errorf("pod %s port %s: picker chose host port %d, which is out of range or in use", podID, name, p)
			}
			port = p
		}
		if err := ports.Put(key, portBytes(port)); err != nil {
			return err
		}
		return owners.Put(portBytes(port), key)
	})
	if err != nil {
		return 0, err
	}
	return port, nil
}

// ReleasePort frees one named port of a pod. Releasing what is not held
// succeeds.
func (s *Store) ReleasePort(ctx context.Context, podID, name string) error {
	return s.update(ctx, func(t *txn) error {
		_, err := releasePorts(t.Tx, podID, name)
		return err
	})
}

// ReleasePorts frees every port of a pod, its port set included.
// Releasing what is not held succeeds.
func (s *Store) ReleasePorts(ctx context.Context, podID string) error {
	return s.update(ctx, func(t *txn) error {
		return releaseAllPorts(t.Tx, podID)
	})
}

// releasePorts deletes podID's allocation for name, or all of them if name
// is empty, and their reverse entries.
func releasePorts(tx *bolt.Tx, podID, name string) (int, error) {
	ports, owners := tx.Bucket(bucketPorts), tx.Bucket(bucketPortOwners)
	var keys, hostPorts [][]byte
	if name != "" {
		if v := ports.Get(portKey(podID, name)); v != nil {
			keys, hostPorts = append(keys, portKey(podID, name)), append(hostPorts, slices.Clone(v))
		}
	} else {
		prefix := []byte(podID + "/")
		c := ports.Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			keys, hostPorts = append(keys, slices.Clone(k)), append(hostPorts, slices.Clone(v))
		}
	}
	for i, k := range keys {
		if err := ports.Delete(k); err != nil {
			return 0, err
		}
		if err := owners.Delete(hostPorts[i]); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// ListPortAllocations returns the allocations of one pod, or of all pods
// if podID is empty, sorted by host port. Port-set bindings are included,
// with their Key as Name.
func (s *Store) ListPortAllocations(ctx context.Context, podID string) ([]PortAllocation, error) {
	var out []PortAllocation
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPortOwners).ForEach(func(k, v []byte) error {
			pod, name, ok := strings.Cut(string(v), "/")
			if !ok {
				return fmt.Errorf("port %d: corrupt owner %q", binary.BigEndian.Uint16(k), v)
			}
			if podID == "" || pod == podID {
				out = append(out, PortAllocation{PodID: pod, Name: name, HostPort: int(binary.BigEndian.Uint16(k))})
			}
			return nil
		})
	})
	return out, err
}

// PortRange returns a picker for AllocatePort that chooses a free port in
// [lo, hi], starting at a random point so a port just freed is not handed
// straight to the next pod (a stale client would reach the wrong pod). It
// fails with ErrResourceLimit when the range is full.
func PortRange(lo, hi int) func(used map[int]bool) (int, error) {
	return func(used map[int]bool) (int, error) {
		if lo < 1 || hi > 65535 || lo > hi {
			return 0, fmt.Errorf("port range %d-%d: invalid: %w", lo, hi, errdefs.ErrInvalidArgument)
		}
		n := hi - lo + 1
		start := rand.IntN(n)
		for i := range n {
			p := lo + (start+i)%n
			if !used[p] {
				return p, nil
			}
		}
		return 0, fmt.Errorf("host port range %d-%d exhausted: %w", lo, hi, errdefs.ErrResourceLimit)
	}
}

// AllocateSubnet gives the pod a subnet and persists it. It is stable: a
// pod that has one gets the same one back. pick chooses given the subnets
// in use (sorted) and runs inside the write transaction; its choice must be
// a masked prefix that overlaps none in use. The pod must exist.
func (s *Store) AllocateSubnet(ctx context.Context, podID string, pick func(used []netip.Prefix) (netip.Prefix, error)) (netip.Prefix, error) {
	if pick == nil {
		return netip.Prefix{}, fmt.Errorf("pod %s subnet: no picker: %w", podID, errdefs.ErrInvalidArgument)
	}
	return s.AllocateSubnetWith(ctx, podID, func(used []SubnetAllocation) (netip.Prefix, error) {
		ps := make([]netip.Prefix, len(used))
		for i, u := range used {
			ps[i] = u.Prefix
		}
		return pick(ps)
	})
}

// AllocateSubnetWith is AllocateSubnet with a picker that also sees which
// pod holds each subnet in use, so that its errors can name the holder
// (netns's CheckSubnet does). The pod's existing subnet, if any, is
// returned without calling pick.
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

// SubnetPool returns a picker for AllocateSubnet that carves prefixes of
// length bits out of pool, lowest free first, skipping any that overlap a
// subnet in use. It fails with ErrResourceLimit when the pool is full.
func SubnetPool(pool netip.Prefix, bits int) func(used []netip.Prefix) (netip.Prefix, error) {
	return func(used []netip.Prefix) (netip.Prefix, error) {
		if !pool.IsValid() || pool != pool.Masked() || bits < pool.Bits() || bits > pool.Addr().BitLen() {
			return netip.Prefix{}, fmt.Errorf("subnet pool %v /%d: invalid: %w", pool, bits, errdefs.ErrInvalidArgument)
		}
		for c := netip.PrefixFrom(pool.Addr(), bits); pool.Contains(c.Addr()); {
			free := true
			for _, u := range used {
				if u.Overlaps(c) {
					free = false
					break
				}
			}
			if free {
				return c, nil
			}
			next, ok := nextPrefix(c)
			if !ok {
				break
			}
			c = next
		}
		return netip.Prefix{}, fmt.Errorf("subnet pool %v exhausted for /%d: %w", pool, bits, errdefs.ErrResourceLimit)
	}
}

// nextPrefix returns the prefix of the same length right after p, or false
// at the end of the address space.
func nextPrefix(p netip.Prefix) (netip.Prefix, bool) {
	a := p.Addr().AsSlice()
	bit := len(a)*8 - p.Bits() // add 1 << bit to the address
	if bit >= len(a)*8 {
		return netip.Prefix{}, false
	}
	i := len(a) - 1 - bit/8
	carry := uint(1) << (bit % 8)
	for ; i >= 0 && carry > 0; i-- {
		sum := uint(a[i]) + carry
		a[i] = byte(sum)
		carry = sum >> 8
	}
	if carry > 0 {
		return netip.Prefix{}, false
	}
	addr, _ := netip.AddrFromSlice(a)
	return netip.PrefixFrom(addr, p.Bits()), true
}
