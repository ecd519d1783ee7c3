package podspec

import "github.com/pinacle/pinacle-node/podspec/svcspec"

// Defaults the resolver fills into every pod; documented in docs/pod-spec.md.
const (
	DefaultWorkingDir         = "/workspace"
	DefaultHealthInterval     = svcspec.DefaultHealthInterval
	DefaultHealthTimeout      = svcspec.DefaultHealthTimeout
	DefaultHealthRetries      = svcspec.DefaultHealthRetries
	DefaultHealthStartPeriod  = svcspec.DefaultHealthStartPeriod
	DefaultHealthHost         = svcspec.DefaultHealthHost
	DefaultHealthPath         = svcspec.DefaultHealthPath
	DefaultHealthStatusMin    = svcspec.DefaultHealthStatusMin
	DefaultHealthStatusMax    = svcspec.DefaultHealthStatusMax
	DefaultStopGracePeriod    = svcspec.DefaultStopGracePeriod
	DefaultRestart            = svcspec.DefaultRestart
	DefaultPortProtocol       = ProtocolTCP
	DefaultEgressMode         = EgressDefault
	DefaultEgressRuleProtocol = ProtocolAny
)

// Default fills every unset field that has a default, so that a resolved
// spec says explicitly what the node will do. It is idempotent and never
// overwrites a value that is set. Invalid values are left for Validate.
func (p *Pod) Default() {
	if p.Slug == "" && IsDNSLabel(p.Name) {
		p.Slug = p.Name // a bad name is reported once, as the name
	}
	if p.WorkingDir == "" {
		p.WorkingDir = DefaultWorkingDir
	}
	r := &p.Resources
	if r.Tier == "" {
		r.Tier = DefaultTier
	}
	if t, ok := LookupTier(r.Tier); ok {
		if r.CPUCores == 0 {
			r.CPUCores = t.CPUMax
		}
		if r.MemoryMB == 0 {
			r.MemoryMB = t.MemoryMB
		}
		if r.StorageMB == 0 {
			r.StorageMB = t.StorageMB
		}
	}
	for i := range p.Network.Ports {
		if p.Network.Ports[i].Protocol == "" {
			p.Network.Ports[i].Protocol = DefaultPortProtocol
		}
	}
	if p.Network.Egress == nil {
		p.Network.Egress = &Egress{}
	}
	if p.Network.Egress.Mode == "" {
		p.Network.Egress.Mode = DefaultEgressMode
	}
	for _, rules := range [][]EgressRule{p.Network.Egress.Allow, p.Network.Egress.Deny} {
		for i := range rules {
			if rules[i].Protocol == "" {
				rules[i].Protocol = DefaultEgressRuleProtocol
			}
		}
	}
	for i := range p.Services {
		p.Services[i].Default()
	}
	for i := range p.HealthChecks {
		p.HealthChecks[i].HealthCheck.Default(0)
	}
}

// Service.Default and HealthCheck.Default live with the types, in svcspec.
