package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/pinacle/pinacle-node/internal/iptables"
)

// dnsPort is where pods' resolvers listen.
const dnsPort = 53

// startDNSFilter starts a's filter on its gateway, with seed as the
// addresses already open in its chain. Callers hold the pod's lock.
func (m *manager) startDNSFilter(a *Attachment, seed []netip.Addr) error {
	ups := make([]netip.AddrPort, len(a.Upstreams))
	for i, u := range a.Upstreams {
		ups[i] = netip.AddrPortFrom(u, dnsPort)
	}
	chain := a.DomainChain
	set := newAddrSet(chain, func(ctx context.Context, lines []string) error {
		m.iptMu.Lock()
		defer m.iptMu.Unlock()
		return iptables.Restore(ctx, map[string][]string{"filter": lines})
	})
	set.seed(seed)
	m.filtMu.Lock()
	defer m.filtMu.Unlock()
	if _, running := m.filters[a.PodID]; running {
		return nil
	}
	f, err := startDNSFilter(netip.AddrPortFrom(a.Gateway, dnsPort), a.IP, ups, a.Domains, set, m.log.With("pod", a.PodID))
	if err != nil {
		return err
	}
	m.filters[a.PodID] = f
	return nil
}

// stopDNSFilter stops podID's filter if it runs here.
func (m *manager) stopDNSFilter(podID string) {
	m.filtMu.Lock()
	f := m.filters[podID]
	delete(m.filters, podID)
	m.filtMu.Unlock()
	if f != nil {
		f.Close()
	}
}

// ResumeDNSFilters starts the filters an earlier process ran; the
// addresses their chains still hold stay open for DomainTTLFloor (their
// TTLs died with that process), then close unless the pod asks again.
func (m *manager) ResumeDNSFilters(ctx context.Context) error {
	ids, err := m.recordIDs()
	if err != nil {
		return err
	}
	var dump string
	var errs []error
	for _, id := range ids {
		errs = append(errs, m.resumeDNSFilter(ctx, id, &dump))
	}
	return errors.Join(errs...)
}

func (m *manager) resumeDNSFilter(ctx context.Context, id string, dump *string) error {
	defer m.lock(id)()
	a, err := m.load(id)
	if err != nil || a.DomainChain == "" || !a.IP.IsValid() || !nsAlive(a.NetnsPath) {
		return nil // gone, no filter, or half made: Teardown's business
	}
	if *dump == "" {
		if *dump, err = iptables.Save(ctx, "-t", "filter"); err != nil {
			return err
		}
	}
	if err := m.startDNSFilter(a, chainAddrs(*dump, a.DomainChain)); err != nil {
		return fmt.Errorf("pod %s: %w", id, err)
	}
	return nil
}
