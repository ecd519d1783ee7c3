package dnat

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// cut ends the flows and takes route_localnet off the bridge.
func (g detached) cut() error {
	// Flows the kernel is forwarding keep their NAT in conntrack after
	// the rules go, towards a backend that is going away. Without their
	// entries, the client's next packet is a new, un-NATed flow to the
	// host port, where the listener's socket answers a stray segment
	// with a reset: a prompt close.
	var errs []error
	if err := cutFlows(g.flows); err != nil {
		errs = append(errs, err)
	}
	if g.bridge != "" {
		if err := setRouteLocalnet(g.bridge, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Detach takes the pod's rules out as Remove does, counters kept, and
// leaves the flows they made: the conntrack table is read before the
// rules and after, so a flow that began while they were going, which
// their counters may have missed, is counted in the result.
func (k *kernel) Detach(ctx context.Context, pod string) (int, error) {
	if err := errdefs.ValidateID("pod", pod); err != nil {
		return 0, err
	}
	unlock, err := k.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	before, err := natFlows()
	if err != nil {
		return 0, err
	}
	gone, err := k.strip(ctx, pod)
	if err != nil {
		return 0, err
	}
	g := gone[0]
	if old, ok := k.detached[pod]; ok {
		g.flows = append(g.flows, old.flows...)
		g.bridge = cmp.Or(g.bridge, old.bridge)
	}
	k.detached[pod] = g
	if len(g.flows) == 0 {
		return 0, nil
	}
	after, err := natFlows()
	if err != nil {
		return 0, err
	}
	n := 0
	for key, f := range after {
		if _, seen := before[key]; !seen && flowFilter(g.flows).MatchConntrackFlow(f) {
			n++
		}
	}
	return n, nil
}

// Cut ends the flows that the pod's Detach left; without one it does
// nothing.
func (k *kernel) Cut(_ context.Context, pod string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, ok := k.detached[pod]
	if !ok {
		return nil
	}
	delete(k.detached, pod)
	return g.cut()
}

// flowKey is a conntrack entry's original direction.
type flowKey struct {
	src, dst netip.AddrPort
}

// natFlows reads the TCP entries of conntrack whose destination was
// translated, by their original direction.
func natFlows() (map[flowKey]*netlink.ConntrackFlow, error) {
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("dnat: list conntrack entries: %w", err)
	}
	out := map[flowKey]*netlink.ConntrackFlow{}
	for _, f := range flows {
		if f.Forward.Protocol != unix.IPPROTO_TCP || f.Forward.DstIP.Equal(f.Reverse.SrcIP) {
			continue
		}
		src, _ := netip.AddrFromSlice(f.Forward.SrcIP)
		dst, _ := netip.AddrFromSlice(f.Forward.DstIP)
		out[flowKey{netip.AddrPortFrom(src.Unmap(), f.Forward.SrcPort), netip.AddrPortFrom(dst.Unmap(), f.Forward.DstPort)}] = f
	}
	return out, nil
}

// flowFilter matches the conntrack entries of DNAT'd flows to one host
// port and pod: original destination port the host port, replies from the
// pod, and an original destination other than the pod (which excludes the
// userspace forwarder's own connections to the pod).
type flowFilter []flow

func (ff flowFilter) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	if f.Forward.Protocol != unix.IPPROTO_TCP {
		return false
	}
	for _, x := range ff {
		ip := net.IP(x.target.AsSlice())
		if f.Forward.DstPort == x.hostPort && f.Reverse.SrcIP.Equal(ip) && !f.Forward.DstIP.Equal(ip) {
			return true
		}
	}
	return false
}

func cutFlows(flows []flow) error {
	if len(flows) == 0 {
		return nil
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, flowFilter(flows)); err != nil {
		return fmt.Errorf("dnat: delete conntrack entries: %w", err)
	}
	return nil
}
