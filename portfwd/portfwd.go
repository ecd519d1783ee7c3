package portfwd

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Forwarder allocates host ports for pods and forwards TCP connections on
// them to the pod. All methods are safe for concurrent use.
type Forwarder interface {
	// Allocate makes the pod's host ports exactly those for reqs and
	// persists them, returning one Allocation per request, in order. A
	// request that matches an earlier one of the same pod (same Name, or
	// same PodPort when unnamed) keeps its host port, so calling it again
	// on every start is how ports stay stable. A kept port that another
	// process now holds moves to a free one (a pool port) or fails with
	// ErrConflict (an explicit HostPort). While the pod is listening its
	// set cannot change (ErrConflict): Stop it first.
	Allocate(ctx context.Context, podID string, reqs []PortRequest) ([]Allocation, error)
	// Release stops the pod's listeners (draining as Stop does), drops
	// its allocations and counters and frees its ports. Releasing an
	// unknown pod succeeds.
	Release(ctx context.Context, podID string) error
	// Allocations returns the pod's allocations, or every pod's for "".
	Allocations(podID string) []Allocation
	// Start listens on every allocation of the pod and forwards to
	// target; the pod is Running. Starting a listening pod only updates
	// the target. If a host port cannot be bound, nothing stays open
	// and the error (ErrConflict) names the port; Allocate again to move
	// it.
	Start(ctx context.Context, podID string, target netip.Addr) error
	// Stop stops accepting on the pod's ports and lets open connections
	// finish until ctx ends or the drain timeout passes, then closes
	// them. Allocations are kept. Stopping a pod that is not listening
	// succeeds.
	Stop(ctx context.Context, podID string) error
	// SetTarget changes the pod address that new connections go to.
	SetTarget(podID string, target netip.Addr) error
	// SetState tells the forwarder whether the pod can take connections.
	// Leaving Running closes the pod's open connections, whose backend
	// is gone; the listeners stay.
	SetState(podID string, state State) error
	// SetStateIf takes a Running pod to state (NotRunning or
	// Hibernated) as SetState does, if proceed agrees once no new
	// connection can reach the pod's address: proceed sees the pod's
	// counters then, every connection that reached it counted, and
	// those waiting at its listeners as pending. If proceed says no, or
	// a connection began on the kernel path while its rules went, the
	// pod stays Running with its open connections untouched and the
	// error is ErrActive. A pod that is not Running just takes state.
	SetStateIf(podID string, state State, proceed func(PodStats) bool) error
	// Stats returns the counters of every pod and port, for metrics.
	Stats() Stats
	// Close stops every pod as Stop does and releases the forwarder's
	// resources. Allocations stay in the store.
	Close(ctx context.Context) error
}

// PortRequest asks for a host port for one pod port.
type PortRequest struct {
	// Name identifies the port within the pod (e.g. "web"); optional.
	// When empty, PodPort identifies it.
	Name string `json:"name,omitempty"`
	// PodPort is the port the pod listens on.
	PodPort uint16 `json:"podPort"`
	// HostPort asks for this exact host port; 0 takes one from the pool.
	HostPort uint16 `json:"hostPort,omitempty"`
	// Public binds the host port on the public listen address
	// (WithPublicListenAddr) rather than the listen address.
	Public bool `json:"public,omitempty"`
}

func (r PortRequest) key() string { return portKey(r.Name, r.PodPort) }

// Allocation is one host port given to one pod port.
type Allocation struct {
	PodID    string `json:"podID"`
	Name     string `json:"name,omitempty"`
	PodPort  uint16 `json:"podPort"`
	HostPort uint16 `json:"hostPort"`
	// Explicit says the host port was asked for by number, so it is never
	// moved to another one.
	Explicit bool `json:"explicit,omitempty"`
	// Public says the port listens on the public listen address.
	Public bool `json:"public,omitempty"`
}

func (a Allocation) key() string { return portKey(a.Name, a.PodPort) }

func portKey(name string, podPort uint16) string {
	if name != "" {
		return name
	}
	return "#" + strconv.Itoa(int(podPort))
}

// State is what the forwarder knows of a pod's sandbox.
type State string

const (
	// Running pods get their connections forwarded.
	Running State = "running"
	// NotRunning pods get each connection closed at once (a clean FIN),
	// so clients fail fast instead of hanging.
	NotRunning State = "not-running"
	// Hibernated pods are woken by the WakeFunc (WithWaker) when a
	// connection arrives; the connection waits for it. Without a
	// WakeFunc they behave as NotRunning.
	Hibernated State = "hibernated"
)

func (s State) valid() bool { return s == Running || s == NotRunning || s == Hibernated }

// ErrActive says a pod took a connection while SetStateIf was taking it
// out of Running, which it then left alone.
var ErrActive = fmt.Errorf("a connection came as it was leaving running: %w", errdefs.ErrConflict)

// WakeFunc brings a hibernated pod back and returns its address. Concurrent
// connections to the same pod share one call. It must honour ctx.
type WakeFunc func(ctx context.Context, podID string) (netip.Addr, error)

// AllocationStore persists allocations. The node's is internal/storeadapt's,
// on state.db; without one (WithStore) allocations live in memory.
type AllocationStore interface {
	// Load returns every stored allocation.
	Load(ctx context.Context) ([]Allocation, error)
	// Save replaces the pod's allocations with allocs, atomically.
	Save(ctx context.Context, podID string, allocs []Allocation) error
	// Delete removes the pod's allocations; deleting none succeeds.
	Delete(ctx context.Context, podID string) error
}
