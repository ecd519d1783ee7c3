package netns

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/leakcheck"
)

func setup(t *testing.T, e *testEnv, s Spec) *Attachment {
	t.Helper()
	a, err := e.m.Setup(context.Background(), s)
	if err != nil {
		t.Fatalf("setup %s: %v", s.PodID, err)
	}
	return a
}

func mustReach(t *testing.T, what, nsPath, addr string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s: %v", what, time.Since(start)) }()
	if err := hello(nsPath, addr); err != nil {
		t.Errorf("%s: %s unreachable: %v", what, addr, err)
	}
}

func mustNotReach(t *testing.T, what, nsPath, addr string) {
	t.Helper()
	start := time.Now()
	err := hello(nsPath, addr)
	t.Logf("%s: %v (%v)", what, time.Since(start), err)
	if err == nil {
		t.Errorf("%s: %s reachable, want blocked", what, addr)
	}
}

func TestIsolationAndEgress(t *testing.T) {
	e := newTestManager(t)
	x := newInfra(t, e)
	ip := func(a string) string { return netip.MustParseAddrPort(a).Addr().String() }

	a := setup(t, e, Spec{PodID: "a"})
	b := setup(t, e, Spec{PodID: "b"})
	listenIn(t, a.NetnsPath, a.IP.String()+":8080")
	listenIn(t, b.NetnsPath, b.IP.String()+":8080")
	gw := a.Gateway.String() + ":9090"
	listenIn(t, "", gw)

	// The host (the node's port forwarder) reaches pods; replies come back.
	mustReach(t, "host->a", "", a.IP.String()+":8080")
	mustReach(t, "host->b", "", b.IP.String()+":8080")
	// Sanity: the host's own services are up.
	mustReach(t, "host->gw", "", gw)
	mustReach(t, "host->hostaddr", "", x.hostAddr)

	mustNotReach(t, "a->b", a.NetnsPath, b.IP.String()+":8080")
	mustNotReach(t, "b->a", b.NetnsPath, a.IP.String()+":8080")
	mustNotReach(t, "a->own gateway", a.NetnsPath, gw)
	mustNotReach(t, "a->host address", a.NetnsPath, x.hostAddr)
	mustNotReach(t, "a->metadata", a.NetnsPath, x.metadata)
	mustNotReach(t, "a->private", a.NetnsPath, x.private)
	mustReach(t, "a->internet", a.NetnsPath, x.internet)

	// Deny beats the default, allow opens private ranges and metadata.
	c := setup(t, e, Spec{PodID: "c", Policy: Policy{
		Deny: []Rule{{CIDR: netip.MustParsePrefix(ip(x.internet) + "/32"), Ports: []uint16{80}, Protocol: "tcp"}},
		Allow: []Rule{
			{CIDR: netip.MustParsePrefix(ip(x.private) + "/32"), Ports: []uint16{80}},
			{CIDR: netip.MustParsePrefix("169.254.169.254/32")},
			{CIDR: b.Subnet}, // c may talk to b
		},
	}})
	listenIn(t, c.NetnsPath, c.IP.String()+":8080")
	mustReach(t, "host->c", "", c.IP.String()+":8080")
	mustNotReach(t, "c->internet:80 (denied)", c.NetnsPath, x.internet)
	mustReach(t, "c->internet:81 (deny is port 80 only)", c.NetnsPath, x.internet2)
	mustReach(t, "c->private (allowed)", c.NetnsPath, x.private)
	mustReach(t, "c->metadata (allowed)", c.NetnsPath, x.metadata)
	mustReach(t, "c->b (allowed by c's spec)", c.NetnsPath, b.IP.String()+":8080")
	mustNotReach(t, "c->a", c.NetnsPath, a.IP.String()+":8080")
	mustNotReach(t, "b->c", b.NetnsPath, c.IP.String()+":8080")

	// Allowlist: only what is listed.
	d := setup(t, e, Spec{PodID: "d", Policy: Policy{Mode: ModeAllowlist,
		Allow: []Rule{{CIDR: netip.MustParsePrefix(ip(x.internet) + "/32"), Ports: []uint16{80}, Protocol: "tcp"}}}})
	mustReach(t, "d->internet:80", d.NetnsPath, x.internet)
	mustNotReach(t, "d->internet:81", d.NetnsPath, x.internet2)
	mustNotReach(t, "d->private", d.NetnsPath, x.private)
	mustNotReach(t, "d->host address", d.NetnsPath, x.hostAddr)

	// A broad allow does not open the metadata address.
	f := setup(t, e, Spec{PodID: "f", Policy: Policy{Mode: ModeAllowlist,
		Allow: []Rule{{CIDR: netip.MustParsePrefix("0.0.0.0/0")}}}})
	mustReach(t, "f->private", f.NetnsPath, x.private)
	mustNotReach(t, "f->metadata", f.NetnsPath, x.metadata)

	// Outbound traffic left masqueraded by the pod's own nat chain (the
	// bridge plugin's ipMasq is off): its MASQUERADE rule counted it.
	nat := run(t, "iptables-save", "-c", "-t", "nat")
	masq := "-A " + a.MasqChain + " ! -d 224.0.0.0/4 -j MASQUERADE"
	if !strings.Contains(nat, masq) || strings.Contains(nat, "[0:0] "+masq) {
		t.Errorf("masquerade rule of pod a never matched:\n%s", nat)
	}

	// The metadata block is our rule, not a routing accident: its counter moved.
	dump := run(t, "iptables-save", "-c", "-t", "filter")
	if !strings.Contains(dump, "] -A "+a.EgressChain+" -d 169.254.169.254/32") || strings.Contains(dump, "[0:0] -A "+a.EgressChain+" -d 169.254.169.254/32") {
		t.Errorf("metadata reject rule of pod a never matched:\n%s", dump)
	}
}

func TestModeNone(t *testing.T) {
	e := newTestManager(t)
	a := setup(t, e, Spec{PodID: "quiet", Policy: Policy{Mode: ModeNone}})
	if a.IP.IsValid() || a.Bridge != "" {
		t.Fatalf("mode none got network: %+v", a)
	}
	err := ns.WithNetNSPath(a.NetnsPath, func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&1 == 0 {
			return fmt.Errorf("links in mode none: %v", links)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l := listenIn(t, a.NetnsPath, "127.0.0.1:0")
	mustReach(t, "loopback in none", a.NetnsPath, l.Addr().String())
	if err := e.m.Teardown(context.Background(), "quiet"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.NetnsPath); !os.IsNotExist(err) {
		t.Fatalf("netns file left: %v", err)
	}
}

func TestSubnets(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	custom := netip.PrefixFrom(nthAddr(e.pool, 256), 24) // inside the pool, free
	a := setup(t, e, Spec{PodID: "custom", Subnet: custom})
	if a.Subnet != custom || a.IP != nthAddr(custom, 2) || a.Gateway != nthAddr(custom, 1) || a.PrefixLen != 24 {
		t.Fatalf("custom subnet: %+v", a)
	}
	mustReachSelf(t, a)
	b := setup(t, e, Spec{PodID: "auto"})
	if b.Subnet.Overlaps(custom) || !e.pool.Contains(b.Subnet.Addr()) || b.Subnet.Bits() != 28 {
		t.Fatalf("auto subnet %s", b.Subnet)
	}

	_, err := e.m.Setup(ctx, Spec{PodID: "clash", Subnet: netip.PrefixFrom(nthAddr(custom, 128), 25)})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod custom") {
		t.Fatalf("overlapping pod subnet: %v", err)
	}
	// A host route inside the pool (our own dummy) blocks custom and
	// automatic subnets alike.
	dummy := "d" + e.r + "r"
	run(t, "ip", "link", "add", dummy, "type", "bridge") // no dummy module on every kernel
	t.Cleanup(func() { runQuiet("ip", "link", "del", dummy) })
	routeNet := netip.PrefixFrom(nthAddr(e.pool, 512), 24)
	run(t, "ip", "addr", "add", nthAddr(routeNet, 1).String()+"/24", "dev", dummy)
	run(t, "ip", "link", "set", dummy, "up")
	_, err = e.m.Setup(ctx, Spec{PodID: "clash", Subnet: routeNet})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "dev "+dummy) {
		t.Fatalf("overlapping host route: %v", err)
	}
	if _, err := e.m.Setup(ctx, Spec{PodID: "auto"}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second setup: %v", err)
	}
	if _, err := e.m.Get(ctx, "clash"); !errdefs.IsNotFound(err) {
		t.Fatalf("refused setup left a record: %v", err)
	}
}

func mustReachSelf(t *testing.T, a *Attachment) {
	t.Helper()
	listenIn(t, a.NetnsPath, a.IP.String()+":7000")
	mustReach(t, "host->"+a.PodID, "", a.IP.String()+":7000")
}

// leakFilter is what the test manager may create on the host.
func (e *testEnv) leakFilter() []string {
	return append(e.m.LeakFilter(), e.pool.String(), "10.201."+fmt.Sprint(e.pool.Addr().As4()[2])+".")
}

func stateFiles(t *testing.T, e *testEnv) []string {
	t.Helper()
	var out []string
	for _, d := range []string{e.m.podsDir(), e.m.ipamDir(), e.m.cacheDir()} {
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func checkNoLeak(t *testing.T, e *testEnv, before leakcheck.Snapshot, extra ...string) {
	t.Helper()
	ctx := context.Background()
	if err := e.m.RemoveNodeRules(ctx); err != nil {
		t.Fatal(err)
	}
	if d := leakcheck.Diff(before, leakcheck.Take(ctx, append(e.leakFilter(), extra...)...)); len(d) > 0 {
		t.Errorf("leaked:\n  %s", strings.Join(d, "\n  "))
	}
	if f := stateFiles(t, e); len(f) > 0 {
		t.Errorf("state files left: %v", f)
	}
	if subs, _ := e.m.store.List(ctx); len(subs) > 0 {
		t.Errorf("subnets still reserved: %v", subs)
	}
}

func TestTeardownLeavesNothing(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	a := setup(t, e, Spec{PodID: "full", Bandwidth: &Bandwidth{IngressRate: 50e6, EgressRate: 50e6},
		Policy: Policy{Deny: []Rule{{CIDR: netip.MustParsePrefix("198.18.0.0/15"), Ports: []uint16{22, 80}}}}})
	mid := leakcheck.Take(ctx, append(e.leakFilter(), a.LeakFilter()...)...)
	for _, want := range []string{"link: " + a.Bridge, "link: " + a.IfbDevice, "netns: " + a.NetnsName} {
		if !strings.Contains(strings.Join(leakcheck.Diff(before, mid), "\n"), want) {
			t.Errorf("setup did not create %q (leak check would be blind)", want)
		}
	}
	if !strings.Contains(run(t, "iptables-save", "-t", "nat"), a.MasqChain) {
		t.Errorf("masquerade chain %s not installed", a.MasqChain)
	}
	for range 2 {
		if err := e.m.Teardown(ctx, "full"); err != nil {
			t.Fatal(err)
		}
	}
	checkNoLeak(t, e, before, a.LeakFilter()...)
}

func TestTeardownNetnsGone(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	a := setup(t, e, Spec{PodID: "gone", Bandwidth: &Bandwidth{EgressRate: 10e6}})
	run(t, "ip", "netns", "del", a.NetnsName) // behind our back: veth dies with it
	if err := e.m.Teardown(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, e, before, a.LeakFilter()...)
}

func TestTeardownAfterAddressStripped(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	a := setup(t, e, Spec{PodID: "stripped"})
	strip := func() {
		t.Helper()
		err := ns.WithNetNSPath(a.NetnsPath, func(ns.NetNS) error {
			// What runsc does at create/restore: the address (and with it
			// the default route) leaves the interface.
			l, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			return netlink.AddrDel(l, &netlink.Addr{IPNet: prefixToIPNet(a.Prefix())})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	listenIn(t, a.NetnsPath, "0.0.0.0:7001")
	strip()
	if hello("", a.IP.String()+":7001") == nil {
		t.Fatal("pod reachable without its address: strip did nothing")
	}
	if err := e.m.RestoreAddress(ctx, "stripped"); err != nil {
		t.Fatal(err)
	}
	// The failed probe left a FAILED neighbour entry; give ARP a moment.
	if err := poll(5*time.Second, func() error { return hello("", a.IP.String()+":7001") }); err != nil {
		t.Fatalf("after RestoreAddress: %v", err)
	}
	err := ns.WithNetNSPath(a.NetnsPath, func(ns.NetNS) error {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range rs {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				return err
			}
		}
		return fmt.Errorf("no default route after RestoreAddress: %v", rs)
	})
	if err != nil {
		t.Fatal(err)
	}
	strip()
	if err := e.m.Teardown(ctx, "stripped"); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, e, before, a.LeakFilter()...)
}

// A plugin failing mid-ADD (bandwidth missing from the plugin dir) leaves
// nothing behind: Setup undoes its own steps.
func TestSetupFailureRollsBack(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"bridge", "host-local"} {
		if err := os.Symlink("/opt/cni/bin/"+p, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	e := newTestManager(t, WithPluginDirs(dir))
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	_, err := e.m.Setup(ctx, Spec{PodID: "broken", Bandwidth: &Bandwidth{IngressRate: 1e6}})
	if err == nil {
		t.Fatal("setup without the bandwidth plugin succeeded")
	}
	t.Logf("setup failed as intended: %v", err)
	if _, err := e.m.Get(ctx, "broken"); !errdefs.IsNotFound(err) {
		t.Fatalf("record left after failed setup: %v", err)
	}
	checkNoLeak(t, e, before, e.m.names("broken", ModeDefault).LeakFilter()...)
}

// poll retries f until it succeeds or the deadline passes.
func poll(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestConcurrentSetupTeardown(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	const n = 4
	atts := make([]*Attachment, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			atts[i], err = e.m.Setup(ctx, Spec{PodID: fmt.Sprintf("c%d", i)})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Prefix]bool{}
	var filter []string
	for _, a := range atts {
		if seen[a.Subnet] {
			t.Fatalf("subnet %s given twice", a.Subnet)
		}
		seen[a.Subnet] = true
		filter = append(filter, a.LeakFilter()...)
		mustReachSelf(t, a)
	}
	for i := range n {
		go func() { errs <- e.m.Teardown(ctx, fmt.Sprintf("c%d", i)) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	checkNoLeak(t, e, before, filter...)
}

// The node chains are checked once, then assumed; if something removes
// them behind the manager's back, the next Setup notices and puts them
// back rather than failing or leaving the pod unisolated.
func TestNodeChainsRemovedBehindOurBack(t *testing.T) {
	e := newTestManager(t)
	ctx := context.Background()
	setup(t, e, Spec{PodID: "first"})
	if err := e.m.Teardown(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	fwd, in := e.m.nodeForward(), e.m.nodeInput()
	for _, c := range [][]string{
		{"-D", "FORWARD", "-j", fwd}, {"-D", "INPUT", "-j", in},
		{"-F", fwd}, {"-X", fwd}, {"-F", in}, {"-X", in},
	} {
		run(t, "iptables", append([]string{"-w", "5"}, c...)...)
	}
	a := setup(t, e, Spec{PodID: "second"})
	dump := run(t, "iptables-save", "-t", "filter")
	for _, want := range []string{"-A FORWARD -j " + fwd, "-A INPUT -j " + in, "-A " + fwd + " -i " + a.Bridge + " -j " + a.EgressChain} {
		if !strings.Contains(dump, want) {
			t.Errorf("after the node chains were removed, Setup did not restore %q:\n%s", want, dump)
		}
	}
	listenIn(t, "", a.Gateway.String()+":9091")
	mustNotReach(t, "second->own gateway", a.NetnsPath, a.Gateway.String()+":9091")
}
