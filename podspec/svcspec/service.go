package svcspec

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Service is one process the in-sandbox supervisor runs and keeps up.
type Service struct {
	Name            string            `json:"name"`
	Command         []string          `json:"command"`
	Env             map[string]string `json:"env,omitempty"`
	WorkingDir      string            `json:"workingDir,omitempty"`
	User            string            `json:"user,omitempty"`
	Install         []string          `json:"install,omitempty"` // argv run once, before first start, when Creates is missing
	Creates         string            `json:"creates,omitempty"` // path whose existence means Install already ran
	DependsOn       []string          `json:"dependsOn,omitempty"`
	HealthCheck     *HealthCheck      `json:"healthCheck,omitempty"`
	Restart         RestartPolicy     `json:"restart,omitempty"` // default on-failure
	StopGracePeriod Duration          `json:"stopGracePeriod,omitzero"`
	Port            int               `json:"port,omitempty"` // the port it serves on, if any
}

// RestartPolicy says when the supervisor restarts an exited service.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// HealthCheck is how the supervisor decides a service is healthy.
type HealthCheck struct {
	Type        HealthCheckType `json:"type"`
	Port        int             `json:"port,omitempty"`       // http, tcp
	Path        string          `json:"path,omitempty"`       // http; default "/"
	Host        string          `json:"host,omitempty"`       // http, tcp; default 127.0.0.1
	StatusMin   int             `json:"statusMin,omitempty"`  // http; default 200
	StatusMax   int             `json:"statusMax,omitempty"`  // http; default 399
	Command     []string        `json:"command,omitempty"`    // exec
	Interval    Duration        `json:"interval,omitzero"`    // default 10s
	Timeout     Duration        `json:"timeout,omitzero"`     // default 5s
	Retries     int             `json:"retries,omitempty"`    // consecutive failures before unhealthy; default 3
	StartPeriod Duration        `json:"startPeriod,omitzero"` // failures during it do not count; default 60s
}

// HealthCheckType is http, tcp or exec.
type HealthCheckType string

const (
	HealthHTTP HealthCheckType = "http"
	HealthTCP  HealthCheckType = "tcp"
	HealthExec HealthCheckType = "exec"
)

// NamedHealthCheck is a pod-level readiness check: the pod is ready when
// all of them pass.
type NamedHealthCheck struct {
	Name string `json:"name"`
	HealthCheck
}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts "10s"-style strings, or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: want e.g. \"10s\" or \"1m30s\"", s)
		}
		d.Duration = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"10s\" or a number of seconds", b)
	}
	d.Duration = time.Duration(n * float64(time.Second))
	return nil
}

// DeepCopy returns a copy of s that shares no memory with it.
func (s Service) DeepCopy() Service {
	out := s
	out.Command = slices.Clone(s.Command)
	out.Env = maps.Clone(s.Env)
	out.Install = slices.Clone(s.Install)
	out.DependsOn = slices.Clone(s.DependsOn)
	if s.HealthCheck != nil {
		h := s.HealthCheck.DeepCopy()
		out.HealthCheck = &h
	}
	return out
}

// DeepCopy returns a copy of h that shares no memory with it.
func (h HealthCheck) DeepCopy() HealthCheck {
	h.Command = slices.Clone(h.Command)
	return h
}
