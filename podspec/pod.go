package podspec

// Pod is the pod spec: everything the node needs to run one development
// environment. Users write a partial Pod (often just a name and a
// template); the templates resolver merges it onto a template, fills the
// defaults and validates it, and the node runs only resolved Pods.
type Pod struct {
	ID           string             `json:"id,omitempty"`
	Name         string             `json:"name,omitempty"`
	Slug         string             `json:"slug,omitempty"`
	Template     string             `json:"template,omitempty"`
	BaseImage    string             `json:"baseImage,omitempty"`
	Resources    Resources          `json:"resources,omitzero"`
	Network      Network            `json:"network,omitzero"`
	Services     []Service          `json:"services,omitempty"`
	Environment  map[string]string  `json:"environment,omitempty"`
	WorkingDir   string             `json:"workingDir,omitempty"`
	User         string             `json:"user,omitempty"`
	GithubRepo   string             `json:"githubRepo,omitempty"`
	GithubBranch string             `json:"githubBranch,omitempty"`
	HealthChecks []NamedHealthCheck `json:"healthChecks,omitempty"`
	IdleTimeout  Duration           `json:"idleTimeout,omitzero"`
}

// Resources picks a tier and, optionally, explicit values within it. Zero
// values mean "the tier's default"; Default fills them in.
type Resources struct {
	Tier      string  `json:"tier,omitempty"`
	CPUCores  float64 `json:"cpuCores,omitempty"`
	MemoryMB  int64   `json:"memoryMb,omitempty"`
	StorageMB int64   `json:"storageMb,omitempty"`
}

// Network is the pod's ports and its network policy.
type Network struct {
	Ports     []Port     `json:"ports,omitempty"`
	Subnet    string     `json:"subnet,omitempty"` // CIDR; empty: the node picks one
	Egress    *Egress    `json:"egress,omitempty"`
	Bandwidth *Bandwidth `json:"bandwidth,omitempty"`
	DNS       *DNS       `json:"dns,omitempty"`
}

// Port is a port the pod serves on. External, when set, is the host port
// (30000-40000) the node forwards to it; zero lets the node allocate one.
// The host port listens on the node's ports.listenAddr (loopback by
// default) unless Public, which binds it on ports.publicListenAddr for
// other machines to reach without the gateway's authentication.
type Port struct {
	Name     string   `json:"name"`
	Internal int      `json:"internal"`
	Protocol Protocol `json:"protocol,omitempty"` // default tcp
	External int      `json:"external,omitempty"`
	Public   bool     `json:"public,omitempty"`
}

// Protocol is a transport protocol.
type Protocol string

const (
	ProtocolTCP Protocol = "tcp"
	ProtocolUDP Protocol = "udp"
	ProtocolAny Protocol = "any" // egress rules only
)

// EgressMode is the base policy for traffic leaving the pod.
type EgressMode string

const (
	// EgressDefault allows the internet and denies private, link-local
	// (cloud metadata), CGNAT and loopback ranges of the host side.
	EgressDefault EgressMode = "default"
	// EgressNone denies all egress, DNS included; it takes no rules. The
	// pod keeps its address, so its ports are still served.
	EgressNone EgressMode = "none"
	// EgressAllowlist denies all egress except DNS, Allow rules and the
	// addresses that Domains resolve to in the pod's own DNS answers.
	EgressAllowlist EgressMode = "allowlist"
)

// Egress is the pod's outbound policy. Deny rules are applied before
// Allow rules, which punch holes into the mode's base policy.
type Egress struct {
	Mode    EgressMode   `json:"mode,omitempty"` // default "default"
	Allow   []EgressRule `json:"allow,omitempty"`
	Deny    []EgressRule `json:"deny,omitempty"`
	Domains []string     `json:"domains,omitempty"` // allowlist mode: names (exact or "*.suffix") whose answered addresses the pod may reach
}

// EgressRule matches destinations by CIDR, and optionally ports and protocol.
type EgressRule struct {
	CIDR     string   `json:"cidr"`
	Ports    []int    `json:"ports,omitempty"`    // empty: all ports
	Protocol Protocol `json:"protocol,omitempty"` // tcp, udp or any (default)
}

// Bandwidth limits the pod's traffic, in bits per second (rates) and bits
// (bursts), the units of the CNI bandwidth plugin. Rate and burst of one
// direction go together.
type Bandwidth struct {
	IngressRate  BitRate `json:"ingressRate,omitempty"`
	IngressBurst BitRate `json:"ingressBurst,omitempty"`
	EgressRate   BitRate `json:"egressRate,omitempty"`
	EgressBurst  BitRate `json:"egressBurst,omitempty"`
}

// DNS overrides the pod's resolv.conf.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Search      []string `json:"search,omitempty"`
}
