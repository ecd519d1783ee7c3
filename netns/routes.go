package netns

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostRoutes lists the host's IPv4 routes in every table as taken ranges,
// skipping default routes and routes on our own pod bridges (those are
// pod subnets, already known to the subnet store).
func hostRoutes(ourBridgePrefix string) ([]Used, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	links := map[int]string{}
	if ls, err := retryDump(netlink.LinkList); err == nil {
		for _, l := range ls {
			links[l.Attrs().Index] = l.Attrs().Name
		}
	}
	var out []Used
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		p, ok := ipNetToPrefix(r.Dst)
		if !ok || p.Bits() == 0 || p.Addr().IsLoopback() || p.Addr().IsMulticast() {
			continue
		}
		dev := links[r.LinkIndex]
		if dev != "" && strings.HasPrefix(dev, ourBridgePrefix) {
			continue
		}
		out = append(out, Used{Prefix: p, Owner: fmt.Sprintf("host route %s dev %s (table %d)", p, dev, r.Table)})
	}
	return out, nil
}
