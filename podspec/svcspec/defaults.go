package svcspec

import "time"

// Defaults of a service and its health check; podspec re-exports them and
// docs/pod-spec.md documents them.
const (
	DefaultHealthInterval    = 10 * time.Second
	DefaultHealthTimeout     = 5 * time.Second
	DefaultHealthRetries     = 3
	DefaultHealthStartPeriod = 60 * time.Second
	DefaultHealthHost        = "127.0.0.1"
	DefaultHealthPath        = "/"
	DefaultHealthStatusMin   = 200
	DefaultHealthStatusMax   = 399
	DefaultStopGracePeriod   = 10 * time.Second
	DefaultRestart           = RestartOnFailure
)

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
