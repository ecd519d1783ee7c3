package podspec

import "time"

// Defaults the resolver fills into every pod; documented in docs/pod-spec.md.
const (
	DefaultWorkingDir         = "/workspace"
	DefaultHealthInterval     = 10 * time.Second
	DefaultHealthTimeout      = 5 * time.Second
	DefaultHealthRetries      = 3
	DefaultHealthStartPeriod  = 60 * time.Second
	DefaultHealthHost         = "127.0.0.1"
	DefaultHealthPath         = "/"
	DefaultHealthStatusMin    = 200
	DefaultHealthStatusMax    = 399
	DefaultStopGracePeriod    = 10 * time.Second
	DefaultRestart            = RestartOnFailure
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

// Default fills the service's unset fields with their defaults.
func (s *Service) Default() {
	if s.Restart == "" {
		s.Restart = DefaultRestart
	}
	if s.StopGracePeriod.Duration == 0 {
		s.StopGracePeriod.Duration = DefaultStopGracePeriod
	}
	if s.HealthCheck != nil {
		s.HealthCheck.Default(s.Port)
	}
}

// Default fills the check's unset fields; port is the service's port,
// used when an http or tcp check names none.
func (h *HealthCheck) Default(port int) {
	if h.Interval.Duration == 0 {
		h.Interval.Duration = DefaultHealthInterval
	}
	if h.Timeout.Duration == 0 {
		h.Timeout.Duration = DefaultHealthTimeout
	}
	if h.Retries == 0 {
		h.Retries = DefaultHealthRetries
	}
	if h.StartPeriod.Duration == 0 {
		h.StartPeriod.Duration = DefaultHealthStartPeriod
	}
	switch h.Type {
	case HealthHTTP, HealthTCP:
		if h.Port == 0 {
			h.Port = port
		}
		if h.Host == "" {
			h.Host = DefaultHealthHost
		}
	}
	if h.Type == HealthHTTP {
		if h.Path == "" {
			h.Path = DefaultHealthPath
		}
		if h.StatusMin == 0 {
			h.StatusMin = DefaultHealthStatusMin
		}
		if h.StatusMax == 0 {
			h.StatusMax = DefaultHealthStatusMax
		}
	}
}
