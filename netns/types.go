package netns

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Mode selects how much network a pod gets.
type Mode string

const (
	// ModeDefault allows the internet and denies private, shared and
	// link-local ranges (and every pod subnet) unless an Allow rule opens them.
	ModeDefault Mode = "default"
	// ModeAllowlist denies everything except DNS, the Allow rules and the
	// addresses that Domains resolve to (see Policy.Domains).
	ModeAllowlist Mode = "allowlist"
	// ModeNoEgress gives the pod a network that the host reaches (its
	// ports are forwarded) but from which the pod sends nothing new: no
	// DNS, no rules. Its resolv.conf names no nameserver.
	ModeNoEgress Mode = "noegress"
	// ModeNone gives the pod a namespace with only loopback: no CNI at all.
	ModeNone Mode = "none"
)

// Rule matches egress traffic by destination CIDR and, optionally, protocol
// and destination ports. Protocol is "tcp", "udp", "icmp" or "" (any); ports
// need tcp or udp, or "" which then means both.
type Rule struct {
	CIDR     netip.Prefix `json:"cidr"`
	Ports    []uint16     `json:"ports,omitempty"`
	Protocol string       `json:"protocol,omitempty"`
}

// Policy is a pod's egress policy. Evaluation order: Deny rules, then the
// metadata guard (169.254.169.254 unless an Allow rule lies inside
// 169.254.0.0/16), then Allow rules, then the mode's default.
type Policy struct {
	Mode  Mode   `json:"mode,omitempty"`
	Allow []Rule `json:"allow,omitempty"`
	Deny  []Rule `json:"deny,omitempty"`
	// Domains (ModeAllowlist only) are names, exact or "*.suffix", whose
	// addresses the pod may reach once it has resolved them: the pod's
	// resolver is a filter on its gateway that answers only these names
	// and opens each answered A record for its TTL (at least
	// DomainTTLFloor) before the pod sees the answer. Deny rules still win.
	Domains []string `json:"domains,omitempty"`
}

// Bandwidth limits in bits per second (rates) and bits (bursts), applied by
// the CNI bandwidth plugin. A rate without a burst gets a default burst.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

func (b *Bandwidth) isZero() bool { return b == nil || (b.IngressRate == 0 && b.EgressRate == 0) }

// DNS is what goes into the pod's resolv.conf. Empty Nameservers means the
// host's upstream resolvers.
type DNS struct {
	Nameservers []netip.Addr `json:"nameservers,omitempty"`
	Search      []string     `json:"search,omitempty"`
	Options     []string     `json:"options,omitempty"`
}

// Spec is what a pod asks of the network.
type Spec struct {
	PodID string `json:"podID"`
	// Subnet is a custom subnet; the zero value means "allocate one from the pool".
	Subnet    netip.Prefix `json:"subnet,omitzero"`
	Policy    Policy       `json:"policy"`
	Bandwidth *Bandwidth   `json:"bandwidth,omitempty"`
	DNS       DNS          `json:"dns"`
	Hostname  string       `json:"hostname,omitempty"`
}

// Attachment is the result of Setup: what the runtime needs and what the
// node must keep to undo it. The Manager persists it itself under its state
// dir; the pod manager needs only the pod ID to call Teardown.
type Attachment struct {
	PodID     string       `json:"podID"`
	Mode      Mode         `json:"mode"`
	NetnsName string       `json:"netnsName"`
	NetnsPath string       `json:"netnsPath"`
	Interface string       `json:"interface,omitempty"`
	Subnet    netip.Prefix `json:"subnet,omitzero"`
	IP        netip.Addr   `json:"ip,omitzero"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
	PrefixLen int          `json:"prefixLen,omitempty"`
	DNS       DNS          `json:"dns"`
	Hostname  string       `json:"hostname,omitempty"`
	// Domains and Upstreams are set when the pod's policy has domains:
	// DNS.Nameservers is then the gateway, where the node's filter
	// answers, and Upstreams are the resolvers it forwards to.
	Domains   []string     `json:"domains,omitempty"`
	Upstreams []netip.Addr `json:"upstreams,omitempty"`

	// Host-side resources, named deterministically at the start of Setup so
	// that Teardown can find them even if Setup died half way.
	Bridge      string `json:"bridge,omitempty"`
	Network     string `json:"network,omitempty"`     // CNI network name (per pod)
	ContainerID string `json:"containerID,omitempty"` // CNI container ID
	EgressChain string `json:"egressChain,omitempty"` // filter chain jumped to from FORWARD
	HostChain   string `json:"hostChain,omitempty"`   // filter chain jumped to from INPUT
	DomainChain string `json:"domainChain,omitempty"` // filter chain of resolved domain addresses, jumped to from EgressChain
	MasqChain   string `json:"masqChain,omitempty"`   // nat chain for the pod's outbound masquerade
	// SubnetOwner is who holds the subnet reservation when it is not the
	// pod itself: the warm pool entry the network was made as.
	SubnetOwner string          `json:"subnetOwner,omitempty"`
	IfbDevice   string          `json:"ifbDevice,omitempty"` // bandwidth plugin's egress ifb
	ConfList    json.RawMessage `json:"confList,omitempty"`  // CNI conflist used for ADD, reused for DEL
}

// Prefix returns the pod's address with its prefix length (e.g. 10.88.0.2/28).
func (a *Attachment) Prefix() netip.Prefix {
	if !a.IP.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a.IP, a.PrefixLen)
}

var protocols = []string{"", "tcp", "udp", "icmp"}

// Validate checks a rule; field names the rule in messages.
func (r Rule) Validate(field string) error {
	if !r.CIDR.IsValid() || !r.CIDR.Addr().Is4() {
		return fmt.Errorf("%s.cidr: must be an IPv4 CIDR: %w", field, errdefs.ErrInvalidArgument)
	}
	if r.CIDR != r.CIDR.Masked() {
		return fmt.Errorf("%s.cidr %s: host bits set (did you mean %s?): %w", field, r.CIDR, r.CIDR.Masked(), errdefs.ErrInvalidArgument)
	}
	if !slices.Contains(protocols, r.Protocol) {
		return fmt.Errorf("%s.protocol %q: must be one of tcp, udp, icmp or empty: %w", field, r.Protocol, errdefs.ErrInvalidArgument)
	}
	if len(r.Ports) > 0 && r.Protocol == "icmp" {
		return fmt.Errorf("%s.ports: not allowed with protocol icmp: %w", field, errdefs.ErrInvalidArgument)
	}
	if len(r.Ports) > 15 { // iptables multiport limit
		return fmt.Errorf("%s.ports: at most 15 ports per rule: %w", field, errdefs.ErrInvalidArgument)
	}
	if slices.Contains(r.Ports, 0) {
		return fmt.Errorf("%s.ports: port 0 is not a port: %w", field, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Validate checks a policy.
func (p Policy) Validate() error {
	switch p.Mode {
	case "", ModeDefault, ModeAllowlist:
	case ModeNone, ModeNoEgress:
		if len(p.Allow)+len(p.Deny)+len(p.Domains) > 0 {
			return fmt.Errorf("policy: mode %s takes no rules and no domains: %w", p.Mode, errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("policy.mode %q: must be default, allowlist, noegress or none: %w", p.Mode, errdefs.ErrInvalidArgument)
	}
	if len(p.Domains) > 0 && p.Mode != ModeAllowlist {
		return fmt.Errorf("policy.domains: only with mode allowlist: %w", errdefs.ErrInvalidArgument)
	}
	for i, d := range p.Domains {
		if _, err := parseDomainPattern(d); err != nil {
			return fmt.Errorf("policy.domains[%d] %q: %v: %w", i, d, err, errdefs.ErrInvalidArgument)
		}
	}
	for i, r := range p.Allow {
		if err := r.Validate(fmt.Sprintf("policy.allow[%d]", i)); err != nil {
			return err
		}
	}
	for i, r := range p.Deny {
		if err := r.Validate(fmt.Sprintf("policy.deny[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (p Policy) mode() Mode {
	if p.Mode == "" {
		return ModeDefault
	}
	return p.Mode
}

// Validate checks a spec before anything is created.
func (s *Spec) Validate() error {
	if err := errdefs.ValidateID("pod", s.PodID); err != nil {
		return err
	}
	if err := s.Policy.Validate(); err != nil {
		return err
	}
	if s.Subnet.IsValid() {
		if s.Policy.mode() == ModeNone {
			return fmt.Errorf("subnet: not allowed with policy mode none: %w", errdefs.ErrInvalidArgument)
		}
		if !s.Subnet.Addr().Is4() || s.Subnet != s.Subnet.Masked() {
			return fmt.Errorf("subnet %s: must be an IPv4 network address: %w", s.Subnet, errdefs.ErrInvalidArgument)
		}
		if s.Subnet.Bits() < 16 || s.Subnet.Bits() > 30 {
			return fmt.Errorf("subnet %s: prefix length must be /16 to /30: %w", s.Subnet, errdefs.ErrInvalidArgument)
		}
	}
	if b := s.Bandwidth; b != nil {
		if (b.IngressBurst != 0 && b.IngressRate == 0) || (b.EgressBurst != 0 && b.EgressRate == 0) {
			return fmt.Errorf("bandwidth: a burst needs a rate: %w", errdefs.ErrInvalidArgument)
		}
		if s.Policy.mode() == ModeNone && !b.isZero() {
			return fmt.Errorf("bandwidth: not allowed with policy mode none: %w", errdefs.ErrInvalidArgument)
		}
	}
	for i, a := range s.DNS.Nameservers {
		if !a.Is4() || a.IsLoopback() || a.IsUnspecified() {
			return fmt.Errorf("dns.nameservers[%d] %s: must be a non-loopback IPv4 address reachable from the pod: %w", i, a, errdefs.ErrInvalidArgument)
		}
	}
	for i, d := range s.DNS.Search {
		if d == "" || strings.ContainsAny(d, " \t\n") {
			return fmt.Errorf("dns.search[%d] %q: must be a domain name: %w", i, d, errdefs.ErrInvalidArgument)
		}
	}
	for i, o := range s.DNS.Options {
		if o == "" || strings.ContainsAny(o, " \t\n") {
			return fmt.Errorf("dns.options[%d] %q: must be one resolv.conf option: %w", i, o, errdefs.ErrInvalidArgument)
		}
	}
	if s.Hostname != "" && !hostnameRE().MatchString(s.Hostname) {
		return fmt.Errorf("hostname %q: must be an RFC 1123 host name: %w", s.Hostname, errdefs.ErrInvalidArgument)
	}
	return nil
}
