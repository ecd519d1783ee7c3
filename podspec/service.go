package podspec

import "github.com/pinacle/pinacle-node/podspec/svcspec"

// The service and health-check types live in podspec/svcspec, a leaf the
// in-sandbox init links without podspec's image-reference and YAML
// parsers; these aliases keep them part of the pod spec's API.
type (
	// Service is one process the in-sandbox supervisor runs and keeps up.
	Service = svcspec.Service
	// RestartPolicy says when the supervisor restarts an exited service.
	RestartPolicy = svcspec.RestartPolicy
	// HealthCheck is how the supervisor decides a service is healthy.
	HealthCheck = svcspec.HealthCheck
	// HealthCheckType is http, tcp or exec.
	HealthCheckType = svcspec.HealthCheckType
	// NamedHealthCheck is a pod-level readiness check: the pod is ready
	// when all of them pass.
	NamedHealthCheck = svcspec.NamedHealthCheck
	// Duration is a time.Duration written as a Go duration string ("10s").
	Duration = svcspec.Duration
)

const (
	RestartAlways    = svcspec.RestartAlways
	RestartOnFailure = svcspec.RestartOnFailure
	RestartNever     = svcspec.RestartNever

	HealthHTTP = svcspec.HealthHTTP
	HealthTCP  = svcspec.HealthTCP
	HealthExec = svcspec.HealthExec
)
