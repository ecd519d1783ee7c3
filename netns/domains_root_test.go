package netns

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

// queryIn asks server for name from inside the namespace at nsPath.
func queryIn(nsPath string, server netip.AddrPort, name string) (rc dnsmessage.RCode, addrs []netip.Addr, err error) {
	nerr := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
		rc, addrs, err = queryErr(server, name, false)
		return nil
	})
	if nerr != nil {
		return 0, nil, nerr
	}
	return rc, addrs, err
}

// A pod with domains reaches what its allowed names resolve to once it
// has resolved them through its gateway, and nothing else: not a denied
// name, not the upstream resolver directly, not another pod's filter.
// Teardown removes the filter and its chain.
func TestDomainAllowlist(t *testing.T) {
	testenv.RequireRoot(t)
	e := newTestManager(t)
	x := newInfra(t, e)
	ip := func(a string) string { return netip.MustParseAddrPort(a).Addr().String() }
	// The upstream resolver: on the host's extra address (the filter runs
	// on the host), so the pod can reach it only if its chains let it.
	upstream := netip.MustParseAddrPort(x.hostAddr).Addr()
	upstreamDNSOn(t, upstream.String()+":53", map[string]string{
		"ok.test.": ip(x.internet), "a.wild.test.": ip(x.private), "bad.test.": ip(x.internet),
	})
	a := setup(t, e, Spec{PodID: "dom", DNS: DNS{Nameservers: []netip.Addr{upstream}},
		Policy: Policy{Mode: ModeAllowlist, Domains: []string{"ok.test", "*.wild.test"}}})
	if resolv := string(ResolvConf(a.DNS)); !strings.Contains(resolv, "nameserver "+a.Gateway.String()+"\n") || strings.Contains(resolv, upstream.String()) {
		t.Fatalf("resolv.conf of a pod with domains:\n%s", resolv)
	}
	gw := netip.AddrPortFrom(a.Gateway, 53)
	mustNotReach(t, "before any lookup", a.NetnsPath, x.internet)

	if rc, addrs, err := queryIn(a.NetnsPath, gw, "bad.test."); err != nil || rc != dnsmessage.RCodeRefused || len(addrs) != 0 {
		t.Fatalf("denied name: %v %v %v", rc, addrs, err)
	}
	mustNotReach(t, "after a denied lookup", a.NetnsPath, x.internet)
	if rc, addrs, err := queryIn(a.NetnsPath, gw, "OK.test."); err != nil || rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0].String() != ip(x.internet) {
		t.Fatalf("allowed name: %v %v %v", rc, addrs, err)
	}
	mustReach(t, "resolved name", a.NetnsPath, x.internet)
	mustReach(t, "resolved name, another port", a.NetnsPath, x.internet2)
	mustNotReach(t, "private, not resolved yet", a.NetnsPath, x.private)
	if _, addrs, err := queryIn(a.NetnsPath, gw, "a.wild.test."); err != nil || len(addrs) != 1 {
		t.Fatalf("wildcard name: %v %v", addrs, err)
	}
	mustReach(t, "wildcard name", a.NetnsPath, x.private)
	mustNotReach(t, "metadata", a.NetnsPath, x.metadata)
	if _, _, err := queryIn(a.NetnsPath, netip.AddrPortFrom(upstream, 53), "ok.test."); err == nil {
		t.Error("pod queried the upstream resolver directly")
	}

	// Another pod cannot use a's filter (nor its own gateway: it has none).
	b := setup(t, e, Spec{PodID: "other", Policy: Policy{Mode: ModeAllowlist, Allow: []Rule{{CIDR: netip.MustParsePrefix("10.201.0.0/17")}}}})
	if _, _, err := queryIn(b.NetnsPath, gw, "ok.test."); err == nil {
		t.Error("another pod queried a's filter")
	}

	if err := e.m.Teardown(context.Background(), "dom"); err != nil {
		t.Fatal(err)
	}
	if dump := run(t, "iptables-save", "-t", "filter"); strings.Contains(dump, a.DomainChain) {
		t.Errorf("domain chain %s left after teardown:\n%s", a.DomainChain, dump)
	}
	// (Not probed from the host: with the bridge gone, the gateway's
	// address would route to the real network.)
	e.m.filtMu.Lock()
	_, running := e.m.filters["dom"]
	e.m.filtMu.Unlock()
	if running {
		t.Error("filter still running after teardown")
	}
}

// Mode noegress: the host reaches the pod, the pod reaches nothing, not
// even the resolvers its spec names (they are dropped from resolv.conf).
func TestModeNoEgress(t *testing.T) {
	testenv.RequireRoot(t)
	e := newTestManager(t)
	x := newInfra(t, e)
	resolver := netip.MustParseAddrPort(x.hostAddr).Addr()
	upstreamDNSOn(t, resolver.String()+":53", map[string]string{"ok.test.": "198.51.100.1"})
	a := setup(t, e, Spec{PodID: "mute", Policy: Policy{Mode: ModeNoEgress}, DNS: DNS{Nameservers: []netip.Addr{resolver}}})
	if strings.Contains(string(ResolvConf(a.DNS)), "nameserver") {
		t.Errorf("resolv.conf names a resolver:\n%s", ResolvConf(a.DNS))
	}
	listenIn(t, a.NetnsPath, a.IP.String()+":8080")
	mustReach(t, "host->pod", "", a.IP.String()+":8080")
	mustNotReach(t, "pod->internet", a.NetnsPath, x.internet)
	mustNotReach(t, "pod->host address", a.NetnsPath, x.hostAddr)
	if _, _, err := queryIn(a.NetnsPath, netip.AddrPortFrom(resolver, 53), "ok.test."); err == nil {
		t.Error("pod in mode noegress sent a DNS query")
	}
	if err := (Policy{Mode: ModeNoEgress, Allow: []Rule{{CIDR: netip.MustParsePrefix("1.0.0.0/8")}}}).Validate(); err == nil {
		t.Error("noegress with an allow rule validated")
	}
}
