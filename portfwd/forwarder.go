package portfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

var _ Forwarder = (*forwarder)(nil)

type forwarder struct {
	options

	// ctx lives until Close; it bounds wakes and the sweeper.
	ctx       context.Context
	cancel    context.CancelFunc
	sweepDone chan struct{}

	// mu guards the maps below and every port's listener field. It is
	// held across store writes (rare), never across a drain.
	mu     sync.Mutex
	pods   map[string]*podEntry
	byPort map[uint16]string // host port -> pod ID
	cursor uint16            // next pool port to try, so freed ports are reused last
	closed bool

	kernelWarned atomic.Bool // the first kernel path failure was logged
	kernelLastMu sync.Mutex
	kernelLast   map[string]map[uint16]Counters // last good KernelPath.Counters
}

// podEntry is one pod's allocations and backend.
type podEntry struct {
	id    string
	ports []*portEntry // in allocation order; guarded by forwarder.mu

	mu     sync.Mutex // guards the backend fields below
	target netip.Addr
	state  State
	wake   *wakeCall

	// kmu serialises the pod's kernel path calls (kernel.go) and guards
	// kernel. It is taken before f.mu and p.mu, never while holding them.
	kmu    sync.Mutex
	kernel kernelState
}

// portEntry is one allocation, its counters (which live until Release) and
// its listener while the pod is started.
type portEntry struct {
	alloc Allocation
	stats counters
	ln    *listener // guarded by forwarder.mu
}

// New returns a Forwarder with the allocations found in the store.
func New(ctx context.Context, opts ...Option) (Forwarder, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	f := &forwarder{
		options:   o,
		pods:      map[string]*podEntry{},
		byPort:    map[uint16]string{},
		cursor:    o.portMin,
		sweepDone: make(chan struct{}),
	}
	if o.store != nil {
		allocs, err := o.store.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("portfwd: load allocations: %w", err)
		}
		for _, a := range allocs {
			if err := f.adopt(a); err != nil {
				return nil, fmt.Errorf("portfwd: load allocations: %w", err)
			}
		}
	}
	if o.kernel != nil {
		// Rules outlive the daemon: a known pod's stay until its first
		// transition re-applies or removes them (a sandbox still running
		// keeps its ports during the restart); an unknown pod's go now.
		keep := make([]string, 0, len(f.pods))
		for id, p := range f.pods {
			keep = append(keep, id)
			p.kernel.on = true
		}
		if err := o.kernel.Prune(ctx, keep); err != nil {
			f.kernelFailed("prune", "", err)
		}
	}
	if n := ephemeralOverlap(o.portMin, o.portMax); n > 0 {
		o.logger.Warn("portfwd: the kernel may use pool ports for outgoing connections; reserve them",
			"overlap", n, "fix", fmt.Sprintf("sysctl -w net.ipv4.ip_local_reserved_ports=%d-%d", o.portMin, o.portMax))
	}
	// The forwarder outlives New's ctx, which only bounds the load.
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go f.sweep()
	return f, nil
}

// adopt adds one stored allocation, refusing a store that gives one host
// port twice.
func (f *forwarder) adopt(a Allocation) error {
	if err := errdefs.ValidateID("pod", a.PodID); err != nil {
		return err
	}
	if a.HostPort == 0 || a.PodPort == 0 {
		return fmt.Errorf("pod %s: stored allocation %+v has a zero port: %w", a.PodID, a, errdefs.ErrInvalidArgument)
	}
	if holder, ok := f.byPort[a.HostPort]; ok {
		return fmt.Errorf("host port %d stored for pods %s and %s: %w", a.HostPort, holder, a.PodID, errdefs.ErrConflict)
	}
	p := f.pod(a.PodID)
	p.ports = append(p.ports, &portEntry{alloc: a})
	f.byPort[a.HostPort] = a.PodID
	return nil
}

// pod returns the entry for id, creating it. Callers hold f.mu.
func (f *forwarder) pod(id string) *podEntry {
	p := f.pods[id]
	if p == nil {
		p = &podEntry{id: id, state: NotRunning}
		f.pods[id] = p
	}
	return p
}

func (p *podEntry) listening() bool {
	for _, pe := range p.ports {
		if pe.ln != nil {
			return true
		}
	}
	return false
}

func (p *podEntry) allocations() []Allocation {
	out := make([]Allocation, len(p.ports))
	for i, pe := range p.ports {
		out[i] = pe.alloc
	}
	return out
}

func validateRequests(podID string, reqs []PortRequest) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	keys := map[string]bool{}
	hostPorts := map[uint16]bool{}
	for _, r := range reqs {
		if r.Name != "" {
			if err := errdefs.ValidateID("port name", r.Name); err != nil {
				return fmt.Errorf("pod %s: %w", podID, err)
			}
		}
		if r.PodPort == 0 {
			return fmt.Errorf("pod %s: port %q: pod port must be 1-65535: %w", podID, r.Name, errdefs.ErrInvalidArgument)
		}
		if keys[r.key()] {
			return fmt.Errorf("pod %s: port %s requested twice: %w", podID, r.key(), errdefs.ErrInvalidArgument)
		}
		keys[r.key()] = true
		if r.HostPort != 0 {
			if hostPorts[r.HostPort] {
				return fmt.Errorf("pod %s: host port %d requested twice: %w", podID, r.HostPort, errdefs.ErrInvalidArgument)
			}
			hostPorts[r.HostPort] = true
		}
	}
	return nil
}

func (f *forwarder) Allocate(ctx context.Context, podID string, reqs []PortRequest) ([]Allocation, error) {
	if err := validateRequests(podID, reqs); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("portfwd: closed: %w", errdefs.ErrUnavailable)
	}
	old := map[string]*portEntry{}
	var p *podEntry
	if p = f.pods[podID]; p != nil {
		for _, pe := range p.ports {
			old[pe.alloc.key()] = pe
		}
		if p.listening() {
			if sameAllocations(p, reqs) {
				return p.allocations(), nil
			}
			return nil, fmt.Errorf("pod %s: cannot change ports while listening, stop it first: %w", podID, errdefs.ErrConflict)
		}
	}

	out, err := f.choose(podID, reqs, old)
	if err != nil {
		return nil, err
	}

	// Persist before committing in memory: a failed save leaves the
	// previous state everywhere.
	if f.store != nil {
		if len(out) == 0 {
			err = f.store.Delete(ctx, podID)
		} else {
			err = f.store.Save(ctx, podID, out)
		}
		if err != nil {
			return nil, fmt.Errorf("pod %s: save allocations: %w", podID, err)
		}
	}
	if p == nil {
		p = f.pod(podID)
	}
	f.commit(p, out, old)
	f.logger.Debug("portfwd: allocated", "pod", podID, "allocations", out)
	return append([]Allocation(nil), out...), nil
}

// choose gives each request a host port: the one it asks for, else the
// one it held before (old, by key) if still bindable, else a free one from
// the pool. Callers hold f.mu.
func (f *forwarder) choose(podID string, reqs []PortRequest, old map[string]*portEntry) ([]Allocation, error) {
	out := make([]Allocation, len(reqs))
	chosen := map[uint16]bool{}
	// Explicit ports and kept ports first, so the pool never hands out a
	// port this very call is about to keep.
	for i, r := range reqs {
		a := Allocation{PodID: podID, Name: r.Name, PodPort: r.PodPort, Public: r.Public}
		prev := old[r.key()]
		switch {
		case r.HostPort != 0:
			if err := f.checkFree(podID, r.HostPort); err != nil {
				return nil, fmt.Errorf("pod %s: port %s: %w", podID, r.key(), err)
			}
			a.HostPort, a.Explicit = r.HostPort, true
		case prev != nil:
			if err := f.probe(prev.alloc.HostPort); err != nil {
				f.logger.Warn("portfwd: kept host port is taken, moving it",
					"pod", podID, "port", r.key(), "hostPort", prev.alloc.HostPort, "err", err)
				continue
			}
			a.HostPort = prev.alloc.HostPort
		default:
			continue
		}
		out[i] = a
		chosen[a.HostPort] = true
	}
	for i, r := range reqs {
		if out[i].HostPort != 0 {
			continue
		}
		port, err := f.pickFree(chosen)
		if err != nil {
			return nil, fmt.Errorf("pod %s: port %s: %w", podID, r.key(), err)
		}
		out[i] = Allocation{PodID: podID, Name: r.Name, PodPort: r.PodPort, HostPort: port, Public: r.Public}
		chosen[port] = true
	}
	return out, nil
}

// commit makes out the pod's allocations in memory, keeping the counters
// of a mapping that did not change. Callers hold f.mu.
func (f *forwarder) commit(p *podEntry, out []Allocation, old map[string]*portEntry) {
	for _, pe := range p.ports {
		delete(f.byPort, pe.alloc.HostPort)
	}
	ports := make([]*portEntry, len(out))
	for i, a := range out {
		pe := old[a.key()]
		if pe == nil || pe.alloc.HostPort != a.HostPort || pe.alloc.PodPort != a.PodPort {
			pe = &portEntry{} // a different mapping starts its counters afresh
		}
		pe.alloc = a
		ports[i] = pe
		f.byPort[a.HostPort] = a.PodID
	}
	p.ports = ports
}

func sameAllocations(p *podEntry, reqs []PortRequest) bool {
	if len(p.ports) != len(reqs) {
		return false
	}
	for i, r := range reqs {
		a := p.ports[i].alloc
		if a.key() != r.key() || a.PodPort != r.PodPort || a.Public != r.Public || (r.HostPort != 0 && r.HostPort != a.HostPort) {
			return false
		}
	}
	return true
}

// checkFree says whether podID may take port: no other pod has it and no
// other process on the host holds it. Callers hold f.mu.
func (f *forwarder) checkFree(podID string, port uint16) error {
	if holder, ok := f.byPort[port]; ok && holder != podID {
		return fmt.Errorf("host port %d is allocated to pod %s: %w", port, holder, errdefs.ErrConflict)
	}
	if err := f.probe(port); err != nil {
		return portInUse(netip.AddrPortFrom(f.listenAddr, port), err)
	}
	return nil
}

// probe binds the port and lets it go at once: the only reliable test of
// whether a listener would succeed. It returns the bare bind error; naming
// the holder (portInUse) scans /proc, too slow for the pool walk.
func (f *forwarder) probe(port uint16) error {
	ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(f.listenAddr, port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

// portInUse turns a bind failure into an error naming the port and, if it
// can be found, the process holding it.
func portInUse(addr netip.AddrPort, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("host port %d is in use on the host by %s: %w", addr.Port(), holderOf(addr.Port()), errdefs.ErrConflict)
	}
	return fmt.Errorf("host port %d: bind %s: %w", addr.Port(), addr, err)
}

// pickFree returns the next free pool port after the cursor, skipping ports
// given to pods, ports in skip and ports other processes hold. Callers hold
// f.mu.
func (f *forwarder) pickFree(skip map[uint16]bool) (uint16, error) {
	size := int(f.portMax) - int(f.portMin) + 1
	start := int(f.cursor) - int(f.portMin)
	if start < 0 || start >= size {
		start = 0
	}
	for i := range size {
		port := uint16(int(f.portMin) + (start+i)%size)
		if _, taken := f.byPort[port]; taken || skip[port] {
			continue
		}
		if err := f.probe(port); err != nil {
			f.logger.Debug("portfwd: skipping busy host port", "port", port, "err", err)
			continue
		}
		f.cursor = port + 1 // wraps to 0 past 65535; pickFree restarts at min
		return port, nil
	}
	return 0, fmt.Errorf("no free host port in %d-%d: %w", f.portMin, f.portMax, errdefs.ErrResourceLimit)
}

func (f *forwarder) Release(ctx context.Context, podID string) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	if err := f.Stop(ctx, podID); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pods[podID]
	if p == nil {
		return nil
	}
	if p.listening() { // Started again while we drained: the caller raced itself.
		return fmt.Errorf("pod %s: started again during release: %w", podID, errdefs.ErrConflict)
	}
	if f.store != nil {
		if err := f.store.Delete(ctx, podID); err != nil {
			return fmt.Errorf("pod %s: delete allocations: %w", podID, err)
		}
	}
	for _, pe := range p.ports {
		delete(f.byPort, pe.alloc.HostPort)
	}
	delete(f.pods, podID)
	f.logger.Debug("portfwd: released", "pod", podID)
	if f.kernel != nil {
		// Stop removed the rules; this also drops the counters. Holding
		// f.mu keeps a new pod of the same ID from applying meanwhile.
		if err := f.kernel.Release(ctx, podID); err != nil {
			f.kernelFailed("release", podID, err)
		}
	}
	return nil
}

func (f *forwarder) Allocations(podID string) []Allocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	if podID != "" {
		if p := f.pods[podID]; p != nil {
			return p.allocations()
		}
		return nil
	}
	var out []Allocation
	for _, p := range f.pods {
		out = append(out, p.allocations()...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PodID != out[j].PodID {
			return out[i].PodID < out[j].PodID
		}
		return out[i].HostPort < out[j].HostPort
	})
	return out
}
