package netns

// Domain allow-lists (Policy.Domains): which names a pod may resolve, and
// the set of addresses its answers opened, kept as one iptables chain per
// pod. The DNS side lives in dnsfilter.go.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DomainTTLFloor is the shortest time an answered address stays open: a
// record with TTL 0 or 5 s would otherwise close before the pod connects.
const DomainTTLFloor = 60 * time.Second

// domainTTLCap bounds how long one answer keeps an address open.
const domainTTLCap = 24 * time.Hour

// domainPattern is one entry of Policy.Domains: an exact name, or with
// wildcard set every name below suffix (not suffix itself).
type domainPattern struct {
	suffix   string
	wildcard bool
}

func parseDomainPattern(s string) (domainPattern, error) {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	p := domainPattern{suffix: s}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		p = domainPattern{suffix: rest, wildcard: true}
	}
	if p.suffix == "" || len(p.suffix) > 253 || !hostnameRE().MatchString(p.suffix) {
		return p, errors.New(`not a domain name (a leading "*." is allowed)`)
	}
	return p, nil
}

// domainMatcher says whether a queried name is on the pod's list.
type domainMatcher []domainPattern

func newDomainMatcher(domains []string) (domainMatcher, error) {
	m := make(domainMatcher, 0, len(domains))
	for _, d := range domains {
		p, err := parseDomainPattern(d)
		if err != nil {
			return nil, err
		}
		m = append(m, p)
	}
	return m, nil
}

// allows reports whether name (any case, with or without the final dot)
// matches an entry.
func (m domainMatcher) allows(name string) bool {
	name = canonicalName(name)
	for _, p := range m {
		if p.wildcard && strings.HasSuffix(name, "."+p.suffix) || !p.wildcard && name == p.suffix {
			return true
		}
	}
	return false
}

func canonicalName(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// addrSet is the set of addresses a pod's DNS answers opened, each until
// its record's TTL (floored and capped) runs out, mirrored in the pod's
// domain chain as one ACCEPT rule per address. apply runs filter-table
// lines in one iptables-restore.
type addrSet struct {
	chain string
	apply func(ctx context.Context, lines []string) error
	now   func() time.Time

	mu    sync.Mutex
	until map[netip.Addr]time.Time
}

func newAddrSet(chain string, apply func(context.Context, []string) error) *addrSet {
	return &addrSet{chain: chain, apply: apply, now: time.Now, until: map[netip.Addr]time.Time{}}
}

func (s *addrSet) rule(a netip.Addr) string {
	return "-A " + s.chain + " -d " + a.String() + "/32 -j ACCEPT"
}

// allow opens addrs for ttl and returns once the rules are in place, so
// the pod never holds an answer whose address is still closed. An address
// already open only has its time extended (no iptables call).
func (s *addrSet) allow(ctx context.Context, addrs []netip.Addr, ttl time.Duration) error {
	ttl = min(max(ttl, DomainTTLFloor), domainTTLCap)
	s.mu.Lock()
	defer s.mu.Unlock()
	until := s.now().Add(ttl)
	var added []netip.Addr
	for _, a := range addrs {
		old, open := s.until[a]
		if !open && !slices.Contains(added, a) {
			added = append(added, a)
		}
		if until.After(old) {
			s.until[a] = until
		}
	}
	if len(added) == 0 {
		return nil
	}
	lines := make([]string, len(added))
	for i, a := range added {
		lines[i] = s.rule(a)
	}
	if err := s.apply(ctx, lines); err != nil {
		for _, a := range added {
			delete(s.until, a)
		}
		return err
	}
	return nil
}

// expire closes the addresses whose time is up (rewriting the chain in one
// call) and returns when the next one is due (zero: none open).
func (s *addrSet) expire(ctx context.Context) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var gone bool
	for a, t := range s.until {
		if !t.After(now) {
			delete(s.until, a)
			gone = true
		}
	}
	var next time.Time
	keep := make([]netip.Addr, 0, len(s.until))
	for a, t := range s.until {
		keep = append(keep, a)
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if !gone {
		return next, nil
	}
	slices.SortFunc(keep, netip.Addr.Compare)
	lines := []string{"-F " + s.chain}
	for _, a := range keep {
		lines = append(lines, s.rule(a))
	}
	return next, s.apply(ctx, lines)
}

// seed takes over addresses an earlier process opened (rules found in the
// chain) and gives each the floor: their TTLs were not recorded.
func (s *addrSet) seed(addrs []netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	until := s.now().Add(DomainTTLFloor)
	for _, a := range addrs {
		s.until[a] = until
	}
}

// open lists the addresses currently open, sorted.
func (s *addrSet) open() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Addr, 0, len(s.until))
	for a := range s.until {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// chainAddrs reads the addresses of chain's ACCEPT rules from an
// iptables-save dump of the filter table.
func chainAddrs(dump, chain string) []netip.Addr {
	var out []netip.Addr
	for l := range strings.Lines(dump) {
		f := strings.Fields(l)
		if len(f) >= 4 && f[0] == "-A" && f[1] == chain && f[2] == "-d" {
			if p, err := netip.ParsePrefix(f[3]); err == nil && p.Bits() == 32 {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}
