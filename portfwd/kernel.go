package portfwd

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// KernelPath forwards a Running pod's host ports inside the kernel (e.g.
// iptables DNAT, as kube-proxy's iptables mode and Docker with
// userland-proxy=false do), so established flows never cross userspace:
// a userspace relay costs a second trip through the host TCP stack per
// byte, which on a small VM caps throughput well below a direct
// connection.
//
// The forwarder keeps its listeners bound on every allocated port all the
// same: they hold the port, Lima's guest agent forwards ports it sees
// listening, and they serve whenever the kernel rules are absent. So the
// forwarder installs rules only while a pod is Running and listening, and
// removes them first whenever it leaves that state (SetState, Stop,
// Release, Close); new connections then fall to the listener, which
// closes them (NotRunning) or wakes the pod (Hibernated).
//
// Implementations must be idempotent and safe for concurrent use; the
// forwarder serialises the calls for one pod.
type KernelPath interface {
	// Apply makes the kernel forward exactly the pod's ports to target
	// (HostPort -> target:PodPort), replacing what it had for the pod.
	Apply(ctx context.Context, podID string, target netip.Addr, ports []Allocation) error
	// Remove deletes the pod's rules and cuts the flows the kernel is
	// forwarding to it (their backend is going away). Counters are
	// kept. Removing a pod without rules succeeds.
	Remove(ctx context.Context, podID string) error
	// Detach removes the pod's rules as Remove does but leaves the flows
	// the kernel forwards to it, for Cut to end or Apply to keep, and
	// returns how many of them began while the rules were going (which
	// the counters may have missed).
	Detach(ctx context.Context, podID string) (int, error)
	// Cut ends the flows the pod's Detach left; without one it succeeds.
	Cut(ctx context.Context, podID string) error
	// Release removes as Remove does and forgets the pod's counters.
	Release(ctx context.Context, podID string) error
	// Prune removes the rules of every pod of this node not in keep:
	// rules outlive the daemon, and a pod deleted while it was away
	// must not keep its ports.
	Prune(ctx context.Context, keep []string) error
	// Counters returns, per pod and host port, what the kernel path
	// forwarded since Apply first saw the pod. ConnsActive is not known
	// to the kernel path and stays 0.
	Counters(ctx context.Context) (map[string]map[uint16]Counters, error)
}

// kernelTimeout bounds one KernelPath call made from a method without a
// context (SetState, SetTarget, a wake).
const kernelTimeout = 10 * time.Second

// WithKernelPath forwards Running pods' ports through k (see KernelPath).
// Without it, every connection is relayed in userspace.
func WithKernelPath(k KernelPath) Option {
	return func(o *options) error {
		if k == nil {
			return invalid("kernel path must not be nil")
		}
		o.kernel = k
		return nil
	}
}

// kernelState is what the forwarder last asked of the kernel path for one
// pod. Guarded by podEntry.kmu.
type kernelState struct {
	// on says rules may be installed: set before Apply (a failed Apply
	// may have done part of its work) and for pods loaded at New (rules
	// outlive the daemon), cleared by a successful Remove.
	on     bool
	target netip.Addr
	ports  []Allocation
}

// syncKernel brings the pod's kernel rules in line with its state: present
// while it is Running and listening, absent otherwise. A failure is logged
// and leaves the pod to the userspace listener, which always works.
func (f *forwarder) syncKernel(ctx context.Context, p *podEntry) {
	if f.kernel == nil {
		return
	}
	p.kmu.Lock()
	defer p.kmu.Unlock()
	f.syncKernelLocked(ctx, p)
}

// syncKernelLocked is syncKernel for a caller that holds p.kmu.
func (f *forwarder) syncKernelLocked(ctx context.Context, p *podEntry) {
	if f.kernel == nil {
		return
	}
	f.mu.Lock()
	current := f.pods[p.id] == p && !f.closed
	listening := p.listening()
	allocs := p.allocations()
	f.mu.Unlock()
	p.mu.Lock()
	want := current && listening && p.state == Running && p.target.IsValid()
	target := p.target
	p.mu.Unlock()
	if !want {
		f.kernelOff(ctx, p)
		return
	}
	ks := &p.kernel
	if ks.on && ks.target == target && slices.Equal(ks.ports, allocs) {
		return
	}
	ks.on = true
	if err := f.kernel.Apply(ctx, p.id, target, allocs); err != nil {
		f.kernelFailed("apply", p.id, err)
		ks.target, ks.ports = netip.Addr{}, nil // try again next time
		return
	}
	ks.target, ks.ports = target, allocs
	f.logger.Debug("portfwd: kernel path on", "pod", p.id, "target", target)
}

// kernelOff removes the pod's rules if it may have any. Callers hold p.kmu.
func (f *forwarder) kernelOff(ctx context.Context, p *podEntry) {
	if f.kernel == nil || !p.kernel.on {
		return
	}
	if err := f.kernel.Remove(ctx, p.id); err != nil {
		// Rules left behind would send new connections to a pod that
		// is gone; the next transition tries again.
		f.kernelFailed("remove", p.id, err)
		return
	}
	p.kernel = kernelState{}
	f.logger.Debug("portfwd: kernel path off", "pod", p.id)
}

// kernelDetach takes the pod's rules out but leaves its flows (see
// KernelPath.Detach). Callers hold p.kmu.
func (f *forwarder) kernelDetach(ctx context.Context, p *podEntry) (int, error) {
	if f.kernel == nil || !p.kernel.on {
		return 0, nil
	}
	n, err := f.kernel.Detach(ctx, p.id)
	if err != nil {
		// The rules may be half gone: the next sync applies them again.
		p.kernel.target, p.kernel.ports = netip.Addr{}, nil
		return n, err
	}
	p.kernel = kernelState{}
	return n, nil
}

// kernelCut ends the flows kernelDetach left. Callers hold p.kmu.
func (f *forwarder) kernelCut(ctx context.Context, p *podEntry) {
	if f.kernel == nil {
		return
	}
	if err := f.kernel.Cut(ctx, p.id); err != nil {
		f.kernelFailed("cut", p.id, err)
	}
}

// kernelFailed logs a kernel path failure: the first one at Warn, the rest
// at Debug, so a node without a usable nat table does not log per pod
// transition.
func (f *forwarder) kernelFailed(op, podID string, err error) {
	if f.kernelWarned.CompareAndSwap(false, true) {
		f.logger.Warn("portfwd: kernel path failed; the pod's connections go through userspace (logged once)",
			"op", op, "pod", podID, "err", err)
		return
	}
	f.logger.Debug("portfwd: kernel path failed", "op", op, "pod", podID, "err", err)
}

// kernelCtx bounds a kernel call made on behalf of a method without a ctx.
func (f *forwarder) kernelCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(f.ctx, kernelTimeout)
}

// kernelCounters reads the kernel path's counters for Stats; a failure
// only leaves them out.
func (f *forwarder) kernelCounters() map[string]map[uint16]Counters {
	if f.kernel == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	c, err := f.kernel.Counters(ctx)
	f.kernelLastMu.Lock()
	defer f.kernelLastMu.Unlock()
	if err != nil {
		// The last good read keeps the counters from going down.
		f.logger.Debug("portfwd: kernel counters", "err", err)
		return f.kernelLast
	}
	f.kernelLast = c
	return c
}
