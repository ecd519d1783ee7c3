package supervisor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec/svcspec"
)

// Default paths inside the sandbox. The node bind-mounts <pod>/run at
// /.pinacle/run and a config directory at /.pinacle/config.
const (
	DefaultConfigPath    = "/.pinacle/config/services.json"
	DefaultLogDir        = "/.pinacle/run/logs"
	DefaultStatusFile    = "/.pinacle/run/status.json"
	DefaultControlSocket = "@pinacle-init"
	DefaultLogMaxBytes   = 10 << 20
	DefaultLogMaxFiles   = 3
	DefaultPath          = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Defaults for the fields of svcspec.Service and svcspec.HealthCheck.
const (
	DefaultStopGracePeriod = svcspec.DefaultStopGracePeriod
	DefaultHealthInterval  = svcspec.DefaultHealthInterval
	DefaultHealthTimeout   = svcspec.DefaultHealthTimeout
	DefaultHealthRetries   = svcspec.DefaultHealthRetries
	DefaultStartPeriod     = svcspec.DefaultHealthStartPeriod
	DefaultBackoffInitial  = 100 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultBackoffReset    = 10 * time.Second
)

// Config is the supervisor's configuration file (services.json).
type Config struct {
	Services    []svcspec.Service `json:"services"`
	LogDir      string            `json:"logDir,omitempty"`
	StatusFile  string            `json:"statusFile,omitempty"`
	LogMaxBytes int64             `json:"logMaxBytes,omitempty"`
	LogMaxFiles int               `json:"logMaxFiles,omitempty"`
	Env         map[string]string `json:"env,omitempty"` // pod-wide, under each service's own Env
	// ControlDir, when set, holds the control socket (<controlDir>/init.sock).
	// Kept for configs written against the first design; ControlSocket wins.
	ControlDir string `json:"controlDir,omitempty"`
	// ControlSocket is the unix socket init listens on for `init svc`
	// commands; a leading '@' means the abstract namespace (the default),
	// which needs no writable directory inside the sandbox.
	ControlSocket string `json:"controlSocket,omitempty"`

	// Restart backoff: Initial doubles per consecutive failure up to Max;
	// a process that ran at least Reset resets it.
	BackoffInitial svcspec.Duration `json:"backoffInitial,omitempty"`
	BackoffMax     svcspec.Duration `json:"backoffMax,omitempty"`
	BackoffReset   svcspec.Duration `json:"backoffReset,omitempty"`

	// Checks are the pod-level readiness checks (the spec's healthChecks):
	// Status.Ready holds only while every one passes. Exec checks run as
	// User in WorkingDir (the pod's), with Env.
	Checks     []svcspec.NamedHealthCheck `json:"checks,omitempty"`
	User       string                     `json:"user,omitempty"`
	WorkingDir string                     `json:"workingDir,omitempty"`

	// Standby makes init wait, with nothing running, until the node
	// claims the sandbox over Claim's channel; it then reads this file
	// again, which the node has rewritten with the pod's config, and
	// carries on as any init (docs/warmpool.md).
	Standby bool         `json:"standby,omitempty"`
	Claim   *ClaimConfig `json:"claim,omitempty"`
	// DropCapabilities are held by init for its own work (setting a
	// claimed pod's hostname) and dropped, from every set, before any
	// service starts.
	DropCapabilities []string `json:"dropCapabilities,omitempty"`
}

// LoadConfig reads a config file strictly (unknown fields are errors),
// applies defaults and validates it.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("supervisor config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes and validates a config document.
func ParseConfig(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("supervisor config: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("supervisor config: trailing data after the JSON object: %w", errdefs.ErrInvalidArgument)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.LogDir == "" {
		c.LogDir = DefaultLogDir
	}
	if c.StatusFile == "" {
		c.StatusFile = DefaultStatusFile
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.LogMaxFiles == 0 {
		c.LogMaxFiles = DefaultLogMaxFiles
	}
	if c.ControlSocket == "" {
		if c.ControlDir != "" {
			c.ControlSocket = strings.TrimSuffix(c.ControlDir, "/") + "/init.sock"
		} else {
			c.ControlSocket = DefaultControlSocket
		}
	}
	if c.BackoffInitial.Duration == 0 {
		c.BackoffInitial.Duration = DefaultBackoffInitial
	}
	if c.BackoffMax.Duration == 0 {
		c.BackoffMax.Duration = DefaultBackoffMax
	}
	if c.BackoffReset.Duration == 0 {
		c.BackoffReset.Duration = DefaultBackoffReset
	}
	// The same defaults the pod spec gets (podspec owns them), so a
	// services.json written by hand behaves like one the node wrote.
	for i := range c.Services {
		c.Services[i].Default()
	}
	c.defaultChecks()
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("supervisor config: "+format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// Validate checks the config before anything starts: names, commands,
// policies, health checks, unknown dependencies and dependency cycles.
// Call it after defaults are applied (LoadConfig and ParseConfig do).
func (c *Config) Validate() error {
	if c.Standby && (c.Claim == nil || c.Claim.Listen == "" || c.Claim.Token == "") {
		return invalid("standby needs claim.listen and claim.token")
	}
	if err := validateCapabilities(c.DropCapabilities); err != nil {
		return err
	}
	if c.LogMaxBytes < 1024 {
		return invalid("logMaxBytes %d: must be at least 1024", c.LogMaxBytes)
	}
	if c.LogMaxFiles < 1 {
		return invalid("logMaxFiles %d: must be at least 1", c.LogMaxFiles)
	}
	if c.BackoffMax.Duration < c.BackoffInitial.Duration || c.BackoffInitial.Duration < 0 {
		return invalid("backoffMax %s must be >= backoffInitial %s > 0", c.BackoffMax, c.BackoffInitial)
	}
	names := make(map[string]int, len(c.Services))
	for i, s := range c.Services {
		if err := errdefs.ValidateID("service", s.Name); err != nil {
			return fmt.Errorf("supervisor config: services[%d].name: %w", i, err)
		}
		if _, dup := names[s.Name]; dup {
			return invalid("services[%d].name %q: duplicate service name", i, s.Name)
		}
		names[s.Name] = i
		if len(s.Command) == 0 || s.Command[0] == "" {
			return invalid("service %s: command is empty", s.Name)
		}
		switch s.Restart {
		case svcspec.RestartAlways, svcspec.RestartOnFailure, svcspec.RestartNever:
		default:
			return invalid("service %s: restart %q: want always, on-failure or never", s.Name, s.Restart)
		}
		if s.StopGracePeriod.Duration < 0 {
			return invalid("service %s: stopGracePeriod must not be negative", s.Name)
		}
		if s.Creates != "" && len(s.Install) == 0 {
			return invalid("service %s: creates is set but install is empty", s.Name)
		}
		if err := validateHealth("service "+s.Name, s.HealthCheck); err != nil {
			return err
		}
	}
	for _, s := range c.Services {
		for _, d := range s.DependsOn {
			if _, ok := names[d]; !ok {
				return invalid("service %s: dependsOn %q: no such service", s.Name, d)
			}
			if d == s.Name {
				return invalid("service %s: depends on itself", s.Name)
			}
		}
	}
	if cyc := findCycle(c.Services); cyc != nil {
		return invalid("dependency cycle: %s", strings.Join(cyc, " -> "))
	}
	return c.validateChecks()
}

func validateHealth(who string, h *svcspec.HealthCheck) error {
	if h == nil {
		return nil
	}
	switch h.Type {
	case svcspec.HealthHTTP, svcspec.HealthTCP:
		if h.Port <= 0 || h.Port > 65535 {
			return invalid("%s: healthCheck.port %d: want 1-65535 (or set the service port)", who, h.Port)
		}
		if h.Type == svcspec.HealthHTTP {
			if !strings.HasPrefix(h.Path, "/") {
				return invalid("%s: healthCheck.path %q: must start with /", who, h.Path)
			}
			if h.StatusMin < 100 || h.StatusMax > 599 || h.StatusMin > h.StatusMax {
				return invalid("%s: healthCheck status range %d-%d: want 100 <= min <= max <= 599", who, h.StatusMin, h.StatusMax)
			}
		}
	case svcspec.HealthExec:
		if len(h.Command) == 0 || h.Command[0] == "" {
			return invalid("%s: healthCheck.command is empty", who)
		}
	default:
		return invalid("%s: healthCheck.type %q: want http, tcp or exec", who, h.Type)
	}
	if h.Interval.Duration <= 0 || h.Timeout.Duration <= 0 || h.StartPeriod.Duration < 0 {
		return invalid("%s: healthCheck interval and timeout must be positive", who)
	}
	if h.Retries < 1 {
		return invalid("%s: healthCheck.retries %d: must be at least 1", who, h.Retries)
	}
	return nil
}

// findCycle returns one dependency cycle as a closed path of names
// ("a -> b -> a"), or nil. Services are visited in config order so the
// reported cycle is stable.
func findCycle(svcs []svcspec.Service) []string {
	deps := make(map[string][]string, len(svcs))
	for _, s := range svcs {
		deps[s.Name] = s.DependsOn
	}
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(svcs))
	var stack []string
	var visit func(n string) []string
	visit = func(n string) []string {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range deps[n] {
			switch color[d] {
			case grey:
				i := slices.Index(stack, d)
				return append(slices.Clone(stack[i:]), d)
			case white:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return nil
	}
	for _, s := range svcs {
		if color[s.Name] == white {
			if c := visit(s.Name); c != nil {
				return c
			}
		}
	}
	return nil
}
