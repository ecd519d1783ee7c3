package netns

import (
	"net/netip"
	"strconv"
	"strings"
)

// splitTables cuts a full iptables-save dump into per-table dumps.
func splitTables(dump string) map[string]string {
	out := map[string]string{}
	var cur string
	var b strings.Builder
	for l := range strings.Lines(dump) {
		switch {
		case strings.HasPrefix(l, "*"):
			cur = strings.TrimSpace(l[1:])
			b.Reset()
		case strings.HasPrefix(l, "COMMIT") && cur != "":
			out[cur] = b.String()
			cur = ""
		case cur != "":
			b.WriteString(l)
		}
	}
	return out
}

// chainExists reports whether dump (iptables-save output) declares chain.
func chainExists(dump, chain string) bool {
	for l := range strings.Lines(dump) {
		if strings.HasPrefix(l, ":"+chain+" ") {
			return true
		}
	}
	return false
}

// removeChainsLines returns the restore lines that delete every rule
// jumping to one of chains, then flush and delete those chains. Rules are
// deleted by their full spec, copied from iptables-save, so their quoting
// round-trips.
func removeChainsLines(dump string, chains ...string) []string {
	var dels, drops []string
	for l := range strings.Lines(dump) {
		l = strings.TrimRight(l, "\n")
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		for _, c := range chains {
			if strings.HasSuffix(l, " -j "+c) || strings.Contains(l, " -j "+c+" ") || strings.Contains(l, " -g "+c) {
				// Rules inside the chains themselves go with the flush.
				owner := strings.Fields(l)[1]
				if !contains(chains, owner) {
					dels = append(dels, "-D"+l[2:])
				}
				break
			}
		}
	}
	for _, c := range chains {
		if chainExists(dump, c) {
			drops = append(drops, "-F "+c, "-X "+c)
		}
	}
	return append(dels, drops...)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// nodeChainLines builds the node-level chains: traffic into a pod bridge
// is only accepted when it is a reply, or (via the pod chains) from another
// pod whose policy allows it; the host reaches pods from OUTPUT, which
// these chains never see.
func nodeChainLines(dump, fwd, in, brWildcard string) []string {
	var lines []string
	if !chainExists(dump, fwd) {
		lines = append(lines,
			":"+fwd+" - [0:0]",
			"-A "+fwd+" -o "+brWildcard+" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
			"-A "+fwd+" -o "+brWildcard+" ! -i "+brWildcard+" -j DROP",
		)
	}
	if !chainExists(dump, in) {
		lines = append(lines, ":"+in+" - [0:0]")
	}
	if !hasRule(dump, "-A FORWARD -j "+fwd) {
		lines = append(lines, "-I FORWARD 1 -j "+fwd)
	}
	if !hasRule(dump, "-A INPUT -j "+in) {
		lines = append(lines, "-I INPUT 1 -j "+in)
	}
	return lines
}

func hasRule(dump, rule string) bool {
	for l := range strings.Lines(dump) {
		if strings.TrimRight(l, "\n") == rule {
			return true
		}
	}
	return false
}

// ruleMatches renders the match part of r, one string per protocol.
func ruleMatches(r Rule) []string {
	base := "-d " + r.CIDR.String()
	if len(r.Ports) == 0 {
		if r.Protocol == "" {
			return []string{base}
		}
		return []string{base + " -p " + r.Protocol}
	}
	ps := make([]string, len(r.Ports))
	for i, p := range r.Ports {
		ps[i] = strconv.Itoa(int(p))
	}
	protos := []string{r.Protocol}
	if r.Protocol == "" {
		protos = []string{"tcp", "udp"}
	}
	var out []string
	for _, p := range protos {
		out = append(out, base+" -p "+p+" -m multiport --dports "+strings.Join(ps, ","))
	}
	return out
}

var metadataAddr = netip.MustParsePrefix("169.254.169.254/32")

// podChainLines builds a pod's two chains and their jumps:
//   - egress (from FORWARD): where the pod may go beyond the host;
//   - host (from INPUT): what of the host itself the pod may reach, which
//     is nothing but replies, DNS and explicit Allow rules.
//
// REJECT rather than DROP so that a pod's program fails fast with a clear
// error instead of hanging on a timeout.
func podChainLines(a *Attachment, p Policy, nodeFwd, nodeIn string, alsoDeny []netip.Prefix) []string {
	e, h, src := a.EgressChain, a.HostChain, a.IP.String()+"/32"
	lines := []string{":" + e + " - [0:0]", ":" + h + " - [0:0]"}
	if a.DomainChain != "" {
		lines = append(lines, ":"+a.DomainChain+" - [0:0]")
	}
	add := func(chain, rule string) { lines = append(lines, "-A "+chain+" "+rule) }
	for _, c := range []string{e, h} {
		add(c, "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
		add(c, "! -s "+src+" -j DROP") // anti-spoofing: only the pod's own address
		if p.mode() == ModeNoEgress {
			continue // nothing new leaves the pod: not even DNS
		}
		for _, r := range p.Deny {
			for _, m := range ruleMatches(r) {
				add(c, m+" -j REJECT")
			}
		}
		for _, ns := range a.DNS.Nameservers {
			add(c, "-d "+ns.String()+"/32 -p udp --dport 53 -j ACCEPT")
			add(c, "-d "+ns.String()+"/32 -p tcp --dport 53 -j ACCEPT")
		}
		if !allowsLinkLocal(p.Allow) {
			add(c, "-d "+metadataAddr.String()+" -j REJECT")
		}
		for _, r := range p.Allow {
			for _, m := range ruleMatches(r) {
				add(c, m+" -j ACCEPT")
			}
		}
	}
	if p.mode() == ModeDefault {
		for _, r := range append(append([]netip.Prefix(nil), PrivateRanges...), alsoDeny...) {
			add(e, "-d "+r.String()+" -j REJECT")
		}
		add(e, "-j ACCEPT")
	} else {
		if a.DomainChain != "" {
			add(e, "-j "+a.DomainChain) // addresses of allowed names, as the pod resolved them
		}
		add(e, "-j REJECT")
	}
	add(h, "-j REJECT")
	lines = append(lines,
		"-A "+nodeFwd+" -i "+a.Bridge+" -j "+e,
		"-A "+nodeIn+" -i "+a.Bridge+" -j "+h,
	)
	return lines
}

// masqLines builds the pod's outbound NAT, as the bridge plugin's ipMasq
// would: traffic from the pod to anywhere outside its subnet (multicast
// aside) leaves with the host's address. The jump carries the netns name
// as a comment so a leak check can tell whose rule it is.
func masqLines(a *Attachment) []string {
	c := a.MasqChain
	return []string{
		":" + c + " - [0:0]",
		"-A " + c + " -d " + a.Subnet.String() + " -j ACCEPT",
		"-A " + c + " ! -d 224.0.0.0/4 -j MASQUERADE",
		"-A POSTROUTING -s " + a.IP.String() + "/32 -m comment --comment " + a.NetnsName + " -j " + c,
	}
}

// allowsLinkLocal reports whether an Allow rule names link-local space
// explicitly; only then is the metadata address reachable. A broad rule
// like 0.0.0.0/0 does not count.
func allowsLinkLocal(rules []Rule) bool {
	ll := PrivateRanges[4]
	for _, r := range rules {
		if r.CIDR.Bits() >= ll.Bits() && ll.Contains(r.CIDR.Addr()) {
			return true
		}
	}
	return false
}
