package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// State is where a service is in its life.
type State string

const (
	StatePending    State = "pending"    // waiting for its dependencies
	StateInstalling State = "installing" // running its install step
	StateStarting   State = "starting"   // running, health check not yet passed
	StateRunning    State = "running"    // running, no health check
	StateHealthy    State = "healthy"    // running, health check passing
	StateUnhealthy  State = "unhealthy"  // running, health check failing
	StateBackoff    State = "backoff"    // exited, waiting to be restarted
	StateStopped    State = "stopped"    // stopped on request
	StateFailed     State = "failed"     // will not be restarted: install failed, exit != 0 with restart never, or a dependency failed
	StateExited     State = "exited"     // exited 0 and its policy does not restart it
)

// Health is the last verdict of a service's health check.
type Health string

const (
	HealthNone      Health = ""
	HealthStarting  Health = "starting"
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
)

// Status is the supervisor's status file: the pod-level summary and one
// entry per service, in config order.
type Status struct {
	// Ready is true when every service is healthy, running without a
	// health check, or has exited 0 under a policy that does not restart
	// it, and every pod-level check passes.
	Ready     bool            `json:"ready"`
	UpdatedAt time.Time       `json:"updatedAt"`
	InitPid   int             `json:"initPid"`
	StartedAt time.Time       `json:"startedAt"` // when init started
	Stopping  bool            `json:"stopping,omitempty"`
	Error     string          `json:"error,omitempty"` // why init could not run the services (bad config)
	Services  []ServiceStatus `json:"services"`
	Checks    []CheckStatus   `json:"checks,omitempty"` // pod-level readiness checks, in config order
}

// ServiceStatus is one service's entry in the status file.
type ServiceStatus struct {
	Name         string    `json:"name"`
	State        State     `json:"state"`
	Pid          int       `json:"pid,omitempty"`
	Restarts     int       `json:"restarts"`
	LastExitCode *int      `json:"lastExitCode,omitempty"` // 128+signal when killed by a signal
	LastError    string    `json:"lastError,omitempty"`
	Health       Health    `json:"health,omitempty"`
	Since        time.Time `json:"since"`              // when it entered State
	StartedAt    time.Time `json:"startedAt,omitzero"` // when its current (or last) process started
}

// Service returns the entry for name, or nil.
func (s *Status) Service(name string) *ServiceStatus {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// ReadStatus reads a status file written by the supervisor. The file is
// replaced atomically, so a reader never sees a torn write.
func ReadStatus(path string) (*Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("supervisor status: %w", err)
	}
	var s Status
	// Lenient: the writer is the init of a running pod, which may be an
	// older or newer binary than this node; what both know is enough.
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("supervisor status %s: %w", path, err)
	}
	return &s, nil
}
