package netns

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// infra is the test's stand-in for the world beyond the host: an
// "internet" namespace behind a veth pair holding a public-looking server
// (198.18.n.1, benchmarking range), a private-range server, and the cloud
// metadata address. Only traffic from the test's pod pool is routed there
// (a policy rule), so the host's own routing is untouched.
type infra struct {
	inetNS    string
	internet  string // 198.18.n.1:80, default-allowed
	internet2 string // 198.18.n.1:81
	private   string // 10.201.(160+n).1:80, default-denied
	metadata  string // 169.254.169.254:80
	hostAddr  string // 10.201.(192+n).1:80 on a link of its own in the root ns
}

func newInfra(t *testing.T, e *testEnv) *infra {
	t.Helper()
	n := byte(e.n)
	inetName := "pnt-" + e.r + "-inet"
	path, err := createNamedNS(e.m.netnsDir, inetName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNamedNS(path) })

	hostIf, peerIf, dummy := "v"+e.r+"h", "v"+e.r+"p", "d"+e.r
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostIf}, PeerName: peerIf}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runQuiet("ip", "link", "del", hostIf) })
	hostNet := fmt.Sprintf("10.201.%d.1/30", 128+n)
	peerAddr := fmt.Sprintf("10.201.%d.2", 128+n)
	run(t, "ip", "addr", "add", hostNet, "dev", hostIf)
	run(t, "ip", "link", "set", hostIf, "up")
	run(t, "ip", "link", "set", peerIf, "netns", inetName)

	x := &infra{
		inetNS:    path,
		internet:  fmt.Sprintf("198.18.%d.1:80", n),
		internet2: fmt.Sprintf("198.18.%d.1:81", n),
		private:   fmt.Sprintf("10.201.%d.1:80", 160+n),
		metadata:  "169.254.169.254:80",
		hostAddr:  fmt.Sprintf("10.201.%d.1:80", 192+n),
	}
	err = ns.WithNetNSPath(path, func(ns.NetNS) error {
		for _, c := range [][]string{
			{"link", "set", "lo", "up"},
			{"addr", "add", peerAddr + "/30", "dev", peerIf},
			{"link", "set", peerIf, "up"},
			{"route", "add", "default", "via", fmt.Sprintf("10.201.%d.1", 128+n)},
			{"addr", "add", fmt.Sprintf("198.18.%d.1/32", n), "dev", "lo"},
			{"addr", "add", fmt.Sprintf("10.201.%d.1/32", 160+n), "dev", "lo"},
			{"addr", "add", "169.254.169.254/32", "dev", "lo"},
		} {
			// ip(8) forks, and the child inherits this locked thread's netns.
			run(t, "ip", c...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{x.internet, x.internet2, x.private, x.metadata} {
		listenIn(t, path, a)
	}

	table := fmt.Sprint(20100 + int(n))
	for _, dst := range []string{fmt.Sprintf("198.18.%d.1/32", n), fmt.Sprintf("10.201.%d.1/32", 160+n), "169.254.169.254/32"} {
		run(t, "ip", "route", "add", dst, "via", peerAddr, "dev", hostIf, "table", table)
	}
	run(t, "ip", "rule", "add", "from", e.pool.String(), "lookup", table, "pref", table)
	t.Cleanup(func() {
		runQuiet("ip", "rule", "del", "from", e.pool.String(), "lookup", table, "pref", table)
		runQuiet("ip", "route", "flush", "table", table)
	})

	// Another address of the host itself.
	run(t, "ip", "link", "add", dummy, "type", "bridge") // no dummy module on every kernel
	t.Cleanup(func() { runQuiet("ip", "link", "del", dummy) })
	run(t, "ip", "addr", "add", netip.MustParseAddrPort(x.hostAddr).Addr().String()+"/32", "dev", dummy)
	run(t, "ip", "link", "set", dummy, "up")
	listenIn(t, "", x.hostAddr)
	return x
}
