package podspec

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
)

// validate checks ports, the subnet, egress, bandwidth and DNS.
func (n *Network) validate(e *errList) {
	validatePorts(n.Ports, e)
	validateSubnet(n.Subnet, e)
	if n.Egress != nil {
		n.Egress.validate(e)
	}
	if n.Bandwidth != nil {
		n.Bandwidth.validate(e)
	}
	if n.DNS != nil {
		n.DNS.validate(e)
		if n.Egress != nil && n.Egress.Mode == EgressNone && len(n.DNS.Nameservers) > 0 {
			e.add("network.dns.nameservers", "not used with egress mode none: the pod sends no DNS")
		}
	}
}

// validatePorts checks each port and that names, internal ports (per
// protocol) and host ports are unique.
func validatePorts(ports []Port, e *errList) {
	byName := map[string]int{}
	byNum := map[string]int{}
	byExt := map[int]int{}
	for i, p := range ports {
		f := Index("network.ports", i)
		e.uniqueLabel("network.ports", i, p.Name, "port name", byName)
		proto := p.Protocol
		if proto == "" {
			proto = ProtocolTCP
		}
		if proto != ProtocolTCP && proto != ProtocolUDP {
			e.add(f+".protocol", "%q: want tcp or udp", p.Protocol)
		}
		if !validPort(p.Internal) {
			e.add(f+".internal", "%d is not a port: want 1-65535", p.Internal)
		} else {
			key := fmt.Sprintf("%d/%s", p.Internal, proto)
			if j, dup := byNum[key]; dup {
				e.add(f+".internal", "port %s is also network.ports[%d]", key, j)
			}
			byNum[key] = i
		}
		if p.External != 0 {
			if p.External < ExternalPortMin || p.External > ExternalPortMax {
				e.add(f+".external", "%d is outside the node's port pool %d-%d", p.External, ExternalPortMin, ExternalPortMax)
			} else if j, dup := byExt[p.External]; dup {
				e.add(f+".external", "port %d is also network.ports[%d]", p.External, j)
			} else {
				byExt[p.External] = i
			}
			if proto == ProtocolUDP {
				e.add(f+".external", "the node forwards tcp only")
			}
		}
		if p.Public && proto == ProtocolUDP {
			e.add(f+".public", "the node forwards tcp only")
		}
	}
}

// validateSubnet checks a pod's own subnet: a private IPv4 CIDR of /16-/29.
func validateSubnet(subnet string, e *errList) {
	if subnet != "" {
		pfx, err := netip.ParsePrefix(subnet)
		switch {
		case err != nil:
			e.add("network.subnet", "%q is not a CIDR, e.g. \"10.88.0.0/24\"", subnet)
		case !pfx.Addr().Is4():
			e.add("network.subnet", "%q: only IPv4 subnets are supported", subnet)
		case pfx.Masked() != pfx:
			e.add("network.subnet", "%q has host bits set; did you mean %q?", subnet, pfx.Masked())
		case pfx.Bits() < 16 || pfx.Bits() > 29:
			e.add("network.subnet", "%q: prefix length must be between /16 and /29", subnet)
		case !pfx.Addr().IsPrivate() && !netip.MustParsePrefix("100.64.0.0/10").Contains(pfx.Addr()):
			e.add("network.subnet", "%q is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10)", subnet)
		}
	}
}

// validate checks the egress mode, its rules, and that domains come only with an allow list.
func (g *Egress) validate(e *errList) {
	switch g.Mode {
	case "", EgressDefault, EgressNone, EgressAllowlist:
	default:
		e.add("network.egress.mode", "%q: want default, none or allowlist", g.Mode)
	}
	validateRules("network.egress.allow", g.Allow, e)
	validateRules("network.egress.deny", g.Deny, e)
	if g.Mode == EgressNone {
		// none means no egress at all: a rule would only mislead.
		if len(g.Allow) > 0 {
			e.add("network.egress.allow", "not used with mode none (no egress at all); use mode allowlist")
		}
		if len(g.Deny) > 0 {
			e.add("network.egress.deny", "not used with mode none (everything is denied already)")
		}
	}
	if len(g.Domains) > 0 && (g.Mode == "" || g.Mode == EgressDefault || g.Mode == EgressNone) {
		e.add("network.egress.domains", "only used with mode allowlist")
	}
	for i, d := range g.Domains {
		if len(d) > 253 || !hostnameRe().MatchString(d) {
			e.add(Index("network.egress.domains", i), "%q is not a domain name (a leading \"*.\" is allowed)", d)
		}
	}
}

// validate checks that each direction has both rate and burst, within what the CNI plugin can hold.
func (b *Bandwidth) validate(e *errList) {
	pair := func(dir string, rate, burst BitRate) {
		switch {
		case rate == 0 && burst != 0:
			e.add("network.bandwidth."+dir+"Rate", "required when %sBurst is set", dir)
		case rate != 0 && burst == 0:
			e.add("network.bandwidth."+dir+"Burst", "required when %sRate is set", dir)
		}
		// The CNI bandwidth plugin keeps the burst in bytes in a uint32.
		if uint64(burst)/8 >= math.MaxUint32 {
			e.add("network.bandwidth."+dir+"Burst", "%s is above the maximum 4GB (34359738360bit)", burst)
		}
	}
	pair("ingress", b.IngressRate, b.IngressBurst)
	pair("egress", b.EgressRate, b.EgressBurst)
}

// validate checks nameservers and search domains against what resolv.conf can use.
func (d *DNS) validate(e *errList) {
	if len(d.Nameservers) > 3 {
		e.add("network.dns.nameservers", "%d nameservers: resolv.conf uses at most 3", len(d.Nameservers))
	}
	for i, ns := range d.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			e.add(Index("network.dns.nameservers", i), "%q is not an IP address", ns)
		}
	}
	if len(d.Search) > 6 {
		e.add("network.dns.search", "%d search domains: resolv.conf uses at most 6", len(d.Search))
	}
	for i, s := range d.Search {
		if len(s) > 253 || strings.HasPrefix(s, "*") || !hostnameRe().MatchString(s) {
			e.add(Index("network.dns.search", i), "%q is not a domain name", s)
		}
	}
}

func validateRules(field string, rules []EgressRule, e *errList) {
	for i, r := range rules {
		f := Index(field, i)
		if _, err := netip.ParsePrefix(r.CIDR); err != nil {
			hint := ""
			if a, aerr := netip.ParseAddr(r.CIDR); aerr == nil {
				hint = fmt.Sprintf("; did you mean %q?", netip.PrefixFrom(a, a.BitLen()))
			}
			e.add(f+".cidr", "%q is not a CIDR%s", r.CIDR, hint)
		}
		switch r.Protocol {
		case "", ProtocolAny:
			if len(r.Ports) > 0 {
				e.add(f+".protocol", "ports need protocol tcp or udp")
			}
		case ProtocolTCP, ProtocolUDP:
		default:
			e.add(f+".protocol", "%q: want tcp, udp or any", r.Protocol)
		}
		for j, p := range r.Ports {
			if !validPort(p) {
				e.add(Index(f+".ports", j), "%d is not a port: want 1-65535", p)
			}
		}
	}
}
