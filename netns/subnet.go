package netns

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Used is a subnet that is taken, and by whom (a pod ID, or a description
// such as "host route 192.168.1.0/24 dev eth0"), so that a conflict error
// can name the clash.
type Used struct {
	Prefix netip.Prefix `json:"prefix"`
	Owner  string       `json:"owner"`
}

// PrivateRanges are the ranges denied to pods by default and the only
// places (besides the pool) where a custom pod subnet may live.
var PrivateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
}

// overlaps reports whether two prefixes share any address.
func overlaps(a, b netip.Prefix) bool { return a.Overlaps(b) }

// AllocateSubnet returns the first /bits subnet of pool that overlaps none
// of used. It is pure so that any store (a JSON file, the node's bbolt)
// can persist the result.
func AllocateSubnet(pool netip.Prefix, bits int, used []Used) (netip.Prefix, error) {
	if !pool.IsValid() || !pool.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("pool %s: must be IPv4: %w", pool, errdefs.ErrInvalidArgument)
	}
	if bits < pool.Bits() || bits > 30 {
		return netip.Prefix{}, fmt.Errorf("subnet size /%d: must be between the pool's /%d and /30: %w", bits, pool.Bits(), errdefs.ErrInvalidArgument)
	}
	pool = pool.Masked()
	// Only the used prefixes that touch the pool matter; sorting them lets
	// the walk jump over a whole used block at once instead of testing
	// every candidate against every entry.
	var in []netip.Prefix
	for _, u := range used {
		if u.Prefix.IsValid() && overlaps(u.Prefix, pool) {
			in = append(in, u.Prefix.Masked())
		}
	}
	slices.SortFunc(in, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })

	size := uint32(1) << (32 - bits)
	start := ipToU32(pool.Addr())
	end := start + (uint32(1) << (32 - pool.Bits())) - 1 // inclusive
	for cand := start; cand <= end && cand >= start; {
		p := netip.PrefixFrom(u32ToIP(cand), bits)
		clash := -1
		for i, u := range in {
			if overlaps(u, p) {
				clash = i
				break
			}
		}
		if clash < 0 {
			return p, nil
		}
		// Skip past the clashing prefix, aligned up to our subnet size.
		u := in[clash]
		uEnd := ipToU32(u.Addr()) + (uint32(1) << (32 - u.Bits())) - 1
		next := max(cand+size, (uEnd/size+1)*size)
		if next <= cand { // wrapped
			break
		}
		cand = next
	}
	return netip.Prefix{}, fmt.Errorf("pool %s: no free /%d left: %w", pool, bits, errdefs.ErrResourceLimit)
}

// CheckSubnet validates a custom subnet: it must lie inside the pool or
// inside one of PrivateRanges (so the default egress policy of every other
// pod denies it), and overlap nothing in used (other pods, host routes).
// Inside the pool is fine as long as it is free: pool subnets are handed out
// first-fit, so a custom one just becomes a hole the allocator skips.
func CheckSubnet(want, pool netip.Prefix, used []Used) error {
	if !want.IsValid() || !want.Addr().Is4() || want != want.Masked() {
		return fmt.Errorf("subnet %s: must be an IPv4 network address: %w", want, errdefs.ErrInvalidArgument)
	}
	inside := pool.IsValid() && pool.Bits() <= want.Bits() && pool.Contains(want.Addr())
	if !inside {
		ok := false
		for _, r := range PrivateRanges[:4] { // never link-local
			if r.Bits() <= want.Bits() && r.Contains(want.Addr()) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("subnet %s: must be inside the pool %s or a private range (10/8, 172.16/12, 192.168/16, 100.64/10): %w", want, pool, errdefs.ErrInvalidArgument)
		}
		if pool.IsValid() && overlaps(want, pool) {
			return fmt.Errorf("subnet %s: straddles the pool %s: %w", want, pool, errdefs.ErrConflict)
		}
	}
	for _, u := range used {
		if u.Prefix.IsValid() && overlaps(u.Prefix, want) {
			return fmt.Errorf("subnet %s overlaps %s of %s: %w", want, u.Prefix, u.Owner, errdefs.ErrConflict)
		}
	}
	return nil
}

func ipToU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32ToIP(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// nthAddr returns the n-th address of p (0 is the network address).
func nthAddr(p netip.Prefix, n uint32) netip.Addr { return u32ToIP(ipToU32(p.Masked().Addr()) + n) }
