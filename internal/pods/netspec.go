package pods

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/portfwd"
)

// netSpec maps the pod spec's network section onto what netns takes.
func netSpec(id string, s *podspec.Pod) (netns.Spec, error) {
	ns := netns.Spec{PodID: id, Hostname: hostname(s)}
	if s.Network.Subnet != "" {
		p, err := netip.ParsePrefix(s.Network.Subnet)
		if err != nil {
			return ns, fmt.Errorf("network.subnet %q: %w", s.Network.Subnet, errdefs.ErrInvalidArgument)
		}
		ns.Subnet = p
	}
	if e := s.Network.Egress; e != nil {
		switch e.Mode {
		case podspec.EgressDefault, "":
			ns.Policy.Mode = netns.ModeDefault
		case podspec.EgressNone:
			// The pod keeps a network (the node reaches its ports) but
			// sends nothing; validation keeps rules away from it.
			ns.Policy.Mode = netns.ModeNoEgress
		case podspec.EgressAllowlist:
			ns.Policy.Mode = netns.ModeAllowlist
			ns.Policy.Domains = e.Domains
		}
		var err error
		if ns.Policy.Allow, err = rules("network.egress.allow", e.Allow); err != nil {
			return ns, err
		}
		if ns.Policy.Deny, err = rules("network.egress.deny", e.Deny); err != nil {
			return ns, err
		}
	}
	if b := s.Network.Bandwidth; b != nil {
		ns.Bandwidth = &netns.Bandwidth{
			IngressRate: uint64(b.IngressRate), IngressBurst: uint64(b.IngressBurst),
			EgressRate: uint64(b.EgressRate), EgressBurst: uint64(b.EgressBurst),
		}
	}
	if d := s.Network.DNS; d != nil {
		ns.DNS.Search = d.Search
		for i, n := range d.Nameservers {
			a, err := netip.ParseAddr(n)
			if err != nil {
				return ns, fmt.Errorf("network.dns.nameservers[%d] %q: %w", i, n, errdefs.ErrInvalidArgument)
			}
			ns.DNS.Nameservers = append(ns.DNS.Nameservers, a)
		}
	}
	return ns, ns.Validate()
}

func rules(field string, in []podspec.EgressRule) ([]netns.Rule, error) {
	var out []netns.Rule
	for i, r := range in {
		p, err := netip.ParsePrefix(r.CIDR)
		if err != nil {
			if a, aerr := netip.ParseAddr(r.CIDR); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("%s[%d].cidr %q: %w", field, i, r.CIDR, errdefs.ErrInvalidArgument)
			}
		}
		nr := netns.Rule{CIDR: p.Masked()}
		if r.Protocol != podspec.ProtocolAny {
			nr.Protocol = string(r.Protocol)
		}
		for _, port := range r.Ports {
			nr.Ports = append(nr.Ports, uint16(port))
		}
		out = append(out, nr)
	}
	return out, nil
}

// portRequests are the TCP ports the forwarder serves for the pod.
func portRequests(s *podspec.Pod) []portfwd.PortRequest {
	var reqs []portfwd.PortRequest
	for _, p := range s.Network.Ports {
		if p.Protocol != "" && p.Protocol != podspec.ProtocolTCP {
			continue
		}
		reqs = append(reqs, portfwd.PortRequest{Name: p.Name, PodPort: uint16(p.Internal), HostPort: uint16(p.External), Public: p.Public})
	}
	return reqs
}

func hostname(s *podspec.Pod) string {
	h := s.Slug
	if h == "" {
		h = s.Name
	}
	h = strings.ToLower(h)
	if len(h) > 63 {
		h = h[:63]
	}
	if !podspec.IsDNSLabel(h) {
		h = "pod-" + s.ID
	}
	return h
}
