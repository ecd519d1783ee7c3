package pods

import "github.com/pinacle/pinacle-node/internal/api"

// The manager implements api.Service; the contract and its types live in
// internal/api, which builds without Linux. These aliases keep this
// package's files compiling unchanged while they move to the api names.
type (
	Service       = api.Service
	CreateRequest = api.CreateRequest
	Pod           = api.Pod
	PortStatus    = api.PortStatus
	ServiceInfo   = api.ServiceInfo
	ExecRequest   = api.ExecRequest
	Metrics       = api.Metrics
	PortCounters  = api.PortCounters
	Health        = api.Health
)
