package api

import (
	"os"
	"time"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
)

// The JSON of these types is the wire format: the CLI, the host CLI and
// the e2e tests decode it, so field names and shapes never change. The
// node's own types (store.Event, supervisor.Status, oci.Stats) are
// converted to these in internal/pods, whose tests check both encode the
// same.

// APIVersion is the path prefix version of this API.
const APIVersion = "v1"

// VersionInfo is the body of GET /v1/version.
type VersionInfo struct {
	Version    string `json:"version"`
	APIVersion string `json:"apiVersion"`
	GoVersion  string `json:"goVersion"`
}

// CreateRequest is a pod create: a (partial) spec, merged onto a template.
type CreateRequest struct {
	Spec     podspec.Pod `json:"spec"`
	Template string      `json:"template,omitempty"` // overrides Spec.Template
	Sets     []string    `json:"sets,omitempty"`     // --set path=value overrides, applied after Spec
	Wait     bool        `json:"wait,omitempty"`
}

// Pod is the API view of a pod.
type Pod struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	State      lifecycle.State `json:"state"`
	Reason     string          `json:"reason,omitempty"`
	Template   string          `json:"template,omitempty"`
	Image      string          `json:"image"`
	IP         string          `json:"ip,omitempty"`
	Ports      []PortStatus    `json:"ports,omitempty"`
	Services   []ServiceInfo   `json:"services,omitempty"`
	Spec       *podspec.Pod    `json:"spec,omitempty"`
	Generation int64           `json:"generation"`
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
}

// PortStatus is one forwarded pod port.
type PortStatus struct {
	Name     string `json:"name"`
	Internal int    `json:"internal"`
	External int    `json:"external"` // host port
	URL      string `json:"url,omitempty"`
	Public   bool   `json:"public,omitempty"` // the host port listens on the node's public address
	// Gateway is the port's URL through the node's authenticating
	// gateway (it needs a link from `pod url` first).
	Gateway string `json:"gateway,omitempty"`
}

// URLRequest asks for a signed gateway link to one port of a pod.
type URLRequest struct {
	Port string        `json:"port,omitempty"` // default: the pod's first tcp port
	TTL  time.Duration `json:"ttl,omitempty"`  // nanoseconds; 0: the node's default
}

// PodURL is a signed, expiring gateway link to one port of a pod.
type PodURL struct {
	Pod     string    `json:"pod"`
	Port    string    `json:"port"`
	URL     string    `json:"url"`     // opens the port in a browser, setting its cookie
	Host    string    `json:"host"`    // the clean URL the link redirects to
	Expires time.Time `json:"expires"` // when the link and its cookie stop working
}

// ServiceState is where a service is in its life, as the pod's init
// reports it.
type ServiceState string

// The service states init reports (supervisor.State).
const (
	ServicePending    ServiceState = "pending"    // waiting for its dependencies
	ServiceInstalling ServiceState = "installing" // running its install step
	ServiceStarting   ServiceState = "starting"   // running, health check not yet passed
	ServiceRunning    ServiceState = "running"    // running, no health check
	ServiceHealthy    ServiceState = "healthy"    // running, health check passing
	ServiceUnhealthy  ServiceState = "unhealthy"  // running, health check failing
	ServiceBackoff    ServiceState = "backoff"    // exited, waiting to be restarted
	ServiceStopped    ServiceState = "stopped"    // stopped on request
	ServiceFailed     ServiceState = "failed"     // will not be restarted
	ServiceExited     ServiceState = "exited"     // exited 0 and its policy does not restart it
)

// ServiceHealth is the last verdict of a service's health check ("" when
// it has none): starting, healthy or unhealthy.
type ServiceHealth string

// ServiceInfo is one service as the pod's init last reported it.
type ServiceInfo struct {
	Name         string        `json:"name"`
	State        ServiceState  `json:"state"`
	Pid          int           `json:"pid,omitempty"`
	Restarts     int           `json:"restarts"`
	LastExitCode *int          `json:"lastExitCode,omitempty"` // 128+signal when killed by a signal
	LastError    string        `json:"lastError,omitempty"`
	Health       ServiceHealth `json:"health,omitempty"`
	Since        time.Time     `json:"since"`              // when it entered State
	StartedAt    time.Time     `json:"startedAt,omitzero"` // when its current (or last) process started
}

// ServiceStatus is the status of a pod's services: what ServiceControl
// returns.
type ServiceStatus struct {
	// Ready is true when every service is healthy, running without a
	// health check, or has exited 0 under a policy that does not restart
	// it, and every pod-level check passes.
	Ready     bool          `json:"ready"`
	UpdatedAt time.Time     `json:"updatedAt"`
	InitPid   int           `json:"initPid"`
	StartedAt time.Time     `json:"startedAt"` // when init started
	Stopping  bool          `json:"stopping,omitempty"`
	Error     string        `json:"error,omitempty"` // why init could not run the services (bad config)
	Services  []ServiceInfo `json:"services"`
	Checks    []CheckInfo   `json:"checks,omitempty"` // pod-level readiness checks
}

// ExecRequest describes a process to run in a pod. Stdio are files (runsc
// needs *os.File): the API server passes pipes or a pty slave. On the
// wire it travels as an ExecBody and frames.
type ExecRequest struct {
	Args   []string
	Env    []string
	Cwd    string
	User   string
	Tty    bool
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
}

// Metrics is a pod's resource use.
type Metrics struct {
	PodID   string         `json:"podId"`
	Time    time.Time      `json:"time"`
	Sandbox *SandboxStats  `json:"sandbox,omitempty"`
	Ports   []PortCounters `json:"ports,omitempty"`
}

// SandboxStats is a snapshot of a sandbox's resource use (oci.Stats).
type SandboxStats struct {
	CPUUsageNanos    uint64 `json:"cpuUsageNanos"`
	MemoryUsage      uint64 `json:"memoryUsage"`
	MemoryLimit      uint64 `json:"memoryLimit"`
	MemoryMaxUsage   uint64 `json:"memoryMaxUsage,omitempty"`
	MemoryFailCount  uint64 `json:"memoryFailCount"`
	Pids             uint64 `json:"pids"`
	PidsLimit        uint64 `json:"pidsLimit,omitempty"`
	OOMKills         uint64 `json:"oomKills"`
	UnderOOM         bool   `json:"underOOM,omitempty"`
	CgroupsAvailable bool   `json:"cgroupsAvailable"`
}

// PortCounters are the forwarder's counters for one host port.
type PortCounters struct {
	Name          string `json:"name"`
	HostPort      int    `json:"hostPort"`
	ConnsTotal    uint64 `json:"connsTotal"`
	ConnsActive   int64  `json:"connsActive"`
	ConnsRejected uint64 `json:"connsRejected"`
	BytesIn       uint64 `json:"bytesIn"`
	BytesOut      uint64 `json:"bytesOut"`
}

// Health says whether a pod is healthy: its sandbox is running and every
// service is healthy.
type Health struct {
	PodID    string          `json:"podId"`
	Healthy  bool            `json:"healthy"`
	State    lifecycle.State `json:"state"`
	Sandbox  string          `json:"sandbox"` // runsc status
	Reason   string          `json:"reason,omitempty"`
	Services []ServiceInfo   `json:"services,omitempty"`
	// Checks are the pod-level readiness checks (the spec's healthChecks).
	Checks []CheckInfo `json:"checks,omitempty"`
}

// CheckInfo is one pod-level readiness check: health is starting,
// healthy or unhealthy; lastError is its latest failure.
type CheckInfo struct {
	Name      string    `json:"name"`
	Health    string    `json:"health"`
	LastError string    `json:"lastError,omitempty"`
	Since     time.Time `json:"since"` // when it entered Health
}

// Event is one entry of the node's event log. Seq starts at 1, grows by
// one per event and is never reused, so a follower resumes with "events
// after Seq".
type Event struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	PodID   string          `json:"podId,omitempty"` // empty for node-wide events
	Type    string          `json:"type"`            // EventState, EventDeleted, or another kind ("oom", "service", "port")
	From    lifecycle.State `json:"from,omitempty"`
	To      lifecycle.State `json:"to,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	Message string          `json:"message,omitempty"`
}

// Event types every client may rely on; others are informational.
const (
	EventState   = "state"   // a lifecycle transition: From, To, Reason
	EventDeleted = "deleted" // the pod record was removed
)

// EventLine is one line of an event stream: an event, or the error that
// ended the stream after its 200 status was sent.
type EventLine struct {
	Event
	Error *ErrorBody `json:"error,omitempty"`
}

// ErrorTrailer carries a JSON ErrorBody when a text stream (logs) fails
// after its 200 status was sent.
const ErrorTrailer = "Pinacle-Error"

// ForkRequest asks for a new pod made from a running one (pod fork).
type ForkRequest struct {
	Name string `json:"name"` // the new pod's name (required)
	Wait bool   `json:"wait,omitempty"`
}

// SnapshotRequest asks for a snapshot of a template (template snapshot).
type SnapshotRequest struct {
	Template string `json:"template"`
	// Pod names the running pod to snapshot; empty: any running pod of
	// the template with every service healthy.
	Pod string `json:"pod,omitempty"`
}

// Snapshot is a template snapshot on the node.
type Snapshot struct {
	Key         string    `json:"key"`
	Template    string    `json:"template"`
	ImageDigest string    `json:"imageDigest"`
	SourcePod   string    `json:"sourcePod"`
	Bytes       int64     `json:"bytes"`
	CreatedAt   time.Time `json:"createdAt"`
	LastUsed    time.Time `json:"lastUsed"`
}
