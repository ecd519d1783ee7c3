package netns

// LeakFilter returns substrings that identify this pod's host resources
// (namespace, bridge, ifb, iptables chains, subnet) for
// internal/leakcheck.Take, so an e2e test can prove a teardown complete on
// a machine shared with other work.
func (a *Attachment) LeakFilter() []string {
	f := []string{a.NetnsName}
	for _, s := range []string{a.Bridge, a.IfbDevice, a.EgressChain, a.HostChain, a.MasqChain} {
		if s != "" {
			f = append(f, s)
		}
	}
	if a.IP.IsValid() {
		f = append(f, a.IP.String()+"/")
	}
	if a.Subnet.IsValid() {
		f = append(f, a.Subnet.String())
	}
	return f
}

// LeakFilter returns substrings that identify everything a Manager with
// these names can create on the host, pods and node chains alike.
func (m *manager) LeakFilter() []string {
	return []string{m.netnsPrefix, m.bridgePrefix, m.chainPrefix + "-"}
}
