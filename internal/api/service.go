package api

import (
	"context"
	"io"
)

// Service is what the node offers to its clients (the HTTP API, the
// Kubernetes provider). Every method validates IDs before they touch a
// path and returns errors classified with internal/errdefs. The pod
// manager (internal/pods) implements it in the daemon; Client implements
// it over the socket.
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
	Events(ctx context.Context, idOrName string, since uint64, follow bool, fn func(Event) error) error
	// Logs writes the last tail lines (tail < 0: all) of a service's log
	// to w; with follow it keeps writing until ctx ends.
	Logs(ctx context.Context, idOrName, service string, tail int, follow bool, w io.Writer) error
	// Exec runs a process in the pod's sandbox and returns its exit code.
	Exec(ctx context.Context, idOrName string, req ExecRequest) (int, error)
	Metrics(ctx context.Context, idOrName string) (*Metrics, error)
	Health(ctx context.Context, idOrName string) (*Health, error)
	// ServiceControl starts, stops or restarts one service (op: start,
	// stop, restart) or lists them (op: ls), without restarting the sandbox.
	ServiceControl(ctx context.Context, idOrName, op, service string) (*ServiceStatus, error)
	// URL signs a gateway link to one port of the pod (req.Port "": its
	// first tcp port). A missing pod or port is ErrNotFound, a node
	// without a gateway ErrUnavailable. The pod need not be running.
	URL(ctx context.Context, idOrName string, req URLRequest) (*PodURL, error)
	// RevokeURLs invalidates every gateway link and cookie of the pod
	// (deleting a pod does the same). Idempotent.
	RevokeURLs(ctx context.Context, idOrName string) error
	// Hibernate checkpoints a running pod's sandbox to disk and frees it
	// (its memory and CPU go back to the host); the pod keeps its address,
	// host ports and files, and a connection to a host port wakes it.
	// Idempotent: a hibernated pod succeeds at once. A failed checkpoint
	// leaves the pod running and is returned.
	Hibernate(ctx context.Context, idOrName string) (*Pod, error)
	// Wake restores a hibernated pod: the same processes and memory, the
	// same address and ports. When the restore fails the pod starts
	// afresh from its files and an event says so. Idempotent: a running
	// pod succeeds at once.
	Wake(ctx context.Context, idOrName string) (*Pod, error)
	// Fork makes a new pod (req.Name) from a running one: the same
	// processes with their memory and a copy of its files, under its own
	// ID, address and host ports; the source runs on. A restore that fails
	// starts the new pod afresh from the copied files, with an event.
	Fork(ctx context.Context, idOrName string, req ForkRequest) (*Pod, error)
	// SnapshotTemplate snapshots a running, healthy pod of a template;
	// later pods of that template with the same runtime-shaping spec are
	// restored from it. ErrNotFound without such a pod.
	SnapshotTemplate(ctx context.Context, req SnapshotRequest) (*Snapshot, error)
	// ListSnapshots lists the template snapshots, most recently used first.
	ListSnapshots(ctx context.Context) ([]Snapshot, error)
	// RemoveSnapshot removes one; a missing one is ErrNotFound.
	RemoveSnapshot(ctx context.Context, key string) error
}
