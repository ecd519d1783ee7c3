package pods

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

// Service is what the node offers to its clients (the HTTP API, the
// Kubernetes provider). Every method validates IDs before they touch a
// path and returns errors classified with internal/errdefs.
type Service interface {
	// Create resolves and validates req, records the pod as pending and
	// provisions it. With req.Wait it returns once the pod is running (or
	// failed, with the error); otherwise once the record exists.
	Create(ctx context.Context, req CreateRequest) (*Pod, error)
	// Get finds a pod by ID or name.
	Get(ctx context.Context, idOrName string) (*Pod, error)
	List(ctx context.Context) ([]*Pod, error)
	// Start, Stop and Delete are idempotent: start on a running pod and
	// stop on a stopped pod succeed without doing anything; delete of a
	// missing pod is ErrNotFound, of a failed pod always succeeds.
	Start(ctx context.Context, idOrName string) (*Pod, error)
	Stop(ctx context.Context, idOrName string) (*Pod, error)
	Delete(ctx context.Context, idOrName string) error
	// Events calls fn for each event after since (of one pod, or all when
	// idOrName is empty); with follow it keeps going until ctx ends.
	Events(ctx context.Context, idOrName string, since uint64, follow bool, fn func(store.Event) error) error
	// Logs writes the last tail lines (tail < 0: all) of a service's log
	// to w; with follow it keeps writing until ctx ends.
	Logs(ctx context.Context, idOrName, service string, tail int, follow bool, w io.Writer) error
	// Exec runs a process in the pod's sandbox and returns its exit code.
	Exec(ctx context.Context, idOrName string, req ExecRequest) (int, error)
	Metrics(ctx context.Context, idOrName string) (*Metrics, error)
	Health(ctx context.Context, idOrName string) (*Health, error)
	// ServiceControl starts, stops or restarts one service (op: start,
	// stop, restart) or lists them (op: ls), without restarting the sandbox.
	ServiceControl(ctx context.Context, idOrName, op, service string) (*supervisor.Status, error)
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
}

// ServiceInfo is one service as the supervisor last reported it.
type ServiceInfo = supervisor.ServiceStatus

// ExecRequest describes a process to run in a pod. Stdio are files (runsc
// needs *os.File): the API server passes pipes or a pty slave.
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
	Sandbox *oci.Stats     `json:"sandbox,omitempty"`
	Ports   []PortCounters `json:"ports,omitempty"`
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
}
