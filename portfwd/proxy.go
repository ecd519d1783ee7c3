package portfwd

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/wakedial"
)

const (
	dirIn  = 0 // client -> pod
	dirOut = 1 // pod -> client
)

// proxyConn is one forwarded connection.
type proxyConn struct {
	client, backend *net.TCPConn
	// Raw handles for TCP_INFO, taken once: SyscallConn allocates.
	clientRaw, backendRaw syscall.RawConn

	// mu guards the byte accounting shared by the copy goroutines and
	// the sweeper (see sweep.go).
	mu       sync.Mutex
	credited [2]uint64 // bytes already added to the port's counters
	done     [2]bool   // direction finished; its count is exact

	closeOnce sync.Once
}

// handle serves one accepted connection.
func (l *listener) handle(client *net.TCPConn) {
	defer l.wg.Done()
	st := &l.port.stats
	defer st.active.Add(-1)

	// Pending (since the accept loop) until relayed: the pod's idle
	// sweep must not put it to sleep under a connection waiting for it.
	target, woken, err := l.f.resolve(l.ctx, l.pod)
	if err == nil {
		var backend *net.TCPConn
		backend, err = l.f.dialPod(l.ctx, netip.AddrPortFrom(target, l.port.alloc.PodPort), woken)
		if err == nil {
			l.proxy(client, backend) // which ends the pending
			return
		}
	}
	st.pending.Add(-1)
	// A clean FIN right away: the client sees an empty reply now, not a
	// hang.
	st.failed.Add(1)
	client.Close()
	l.f.logger.Debug("portfwd: backend unavailable", "pod", l.pod.id, "port", l.port.alloc.key(), "err", err)
}

// dialPod dials the pod; after a wake it retries for a while, as the
// restored pod may refuse (or not yet answer) for a moment (wakedial).
func (f *forwarder) dialPod(ctx context.Context, to netip.AddrPort, woken bool) (*net.TCPConn, error) {
	if !woken {
		return f.dial(ctx, to)
	}
	c, err := wakedial.Retry(ctx, func(ctx context.Context) (net.Conn, error) {
		c, err := f.dial(ctx, to)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return c, nil
	}, func(error) bool { return true })
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

func (f *forwarder) dial(ctx context.Context, to netip.AddrPort) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: f.dialTimeout}
	c, err := d.DialContext(ctx, "tcp", to.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", to, err)
	}
	return c.(*net.TCPConn), nil
}

// wakeCall is one wake shared by the connections waiting for it.
type wakeCall struct {
	done   chan struct{}
	target netip.Addr
	err    error
}

// resolve returns where the pod's connections go now, waking a hibernated
// pod if it can (woken says the connection waited for a wake). ctx ends
// when the listener is killed.
func (f *forwarder) resolve(ctx context.Context, p *podEntry) (target netip.Addr, woken bool, err error) {
	p.mu.Lock()
	switch {
	case p.state == Running:
		t := p.target
		p.mu.Unlock()
		return t, false, nil
	case p.state == Hibernated && f.waker != nil:
		w := p.wake
		if w == nil {
			w = &wakeCall{done: make(chan struct{})}
			p.wake = w
			go f.wake(p, w)
		}
		p.mu.Unlock()
		select {
		case <-w.done:
			return w.target, true, w.err
		case <-ctx.Done():
			return netip.Addr{}, true, ctx.Err()
		}
	default:
		state := p.state
		p.mu.Unlock()
		return netip.Addr{}, false, fmt.Errorf("pod %s is %s: %w", p.id, state, errdefs.ErrUnavailable)
	}
}

func (f *forwarder) wake(p *podEntry, w *wakeCall) {
	ctx, cancel := context.WithTimeout(f.ctx, f.wakeTimeout)
	defer cancel()
	f.logger.Info("portfwd: waking pod for a connection", "pod", p.id)
	target, err := f.waker(ctx, p.id)
	if err == nil && !target.IsValid() {
		err = fmt.Errorf("wake returned no address")
	}
	p.mu.Lock()
	woke := err == nil && p.state == Hibernated
	if woke {
		p.state, p.target = Running, target.Unmap()
	}
	p.wake = nil
	p.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("pod %s: wake: %w: %w", p.id, err, errdefs.ErrUnavailable)
		f.logger.Warn("portfwd: wake failed", "pod", p.id, "err", err)
	}
	w.target, w.err = target.Unmap(), err
	close(w.done)
	if woke {
		// Running again: new connections take the kernel path. The
		// waiting ones were released first and are relayed here.
		kctx, kcancel := f.kernelCtx()
		f.syncKernel(kctx, p)
		kcancel()
	}
}

// proxy copies both ways until both sides are done, then closes both.
func (l *listener) proxy(client, backend *net.TCPConn) {
	c := &proxyConn{client: client, backend: backend}
	// Errors here only disable TCP_INFO for this connection (no idle
	// timeout, counts at close only); SyscallConn on a live TCPConn does
	// not fail in practice.
	c.clientRaw, _ = client.SyscallConn()
	c.backendRaw, _ = backend.SyscallConn()
	registered := l.register(c)
	// Registered, its sockets count for the pod's LastActive: no longer
	// pending, with no moment where it is neither.
	st := &l.port.stats
	st.pending.Add(-1)
	if !registered {
		c.abort(true)
		return
	}
	defer l.unregister(c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.copy(dirIn, backend, client, st)
	}()
	c.copy(dirOut, client, backend, st)
	<-done
	c.abort(false)
}

// copy moves one direction. dst and src are the bare *net.TCPConn, so
// io.Copy reaches (*TCPConn).ReadFrom and the kernel splices socket to pipe
// to socket; wrapping either (to count or to reset deadlines) would fall
// back to a userspace buffer. The count comes from io.Copy's return value
// and, while it runs, from TCP_INFO (sweep.go).
func (c *proxyConn) copy(dir int, dst, src *net.TCPConn, st *counters) {
	n, err := io.Copy(dst, src)
	c.finish(dir, uint64(n), st)
	if err != nil {
		// Reset or our own close: abort both sides, passing a reset on.
		c.abort(true)
		return
	}
	// EOF: pass the half-close on and leave the other direction running.
	dst.CloseWrite()
}

// finish records a direction's exact byte count.
func (c *proxyConn) finish(dir int, n uint64, st *counters) {
	c.mu.Lock()
	c.done[dir] = true
	if n > c.credited[dir] {
		st.bytes[dir].Add(n - c.credited[dir])
		c.credited[dir] = n
	}
	c.mu.Unlock()
}

// abort closes both sides; with rst the peers get a reset, not a FIN.
func (c *proxyConn) abort(rst bool) {
	c.closeOnce.Do(func() {
		if rst {
			c.client.SetLinger(0)
			c.backend.SetLinger(0)
		}
		c.client.Close()
		c.backend.Close()
	})
}

func (f *forwarder) SetTarget(podID string, target netip.Addr) error {
	if !target.IsValid() {
		return fmt.Errorf("pod %s: invalid target address: %w", podID, errdefs.ErrInvalidArgument)
	}
	p, err := f.lookup(podID)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.target = target.Unmap()
	p.mu.Unlock()
	ctx, cancel := f.kernelCtx()
	defer cancel()
	f.syncKernel(ctx, p)
	return nil
}

func (f *forwarder) SetState(podID string, state State) error {
	if !state.valid() {
		return fmt.Errorf("pod %s: state %q: want %s, %s or %s: %w", podID, state, Running, NotRunning, Hibernated, errdefs.ErrInvalidArgument)
	}
	p, err := f.lookup(podID)
	if err != nil {
		return err
	}
	ctx, cancel := f.kernelCtx()
	defer cancel()
	if state != Running && f.kernel != nil {
		// The rules go first, so new connections fall to the listener,
		// which closes them or wakes the pod; holding kmu across the
		// state change keeps a concurrent sync from putting them back.
		p.kmu.Lock()
		defer p.kmu.Unlock()
		f.kernelOff(ctx, p)
	}
	p.mu.Lock()
	if state == Running && !p.target.IsValid() {
		p.mu.Unlock()
		return fmt.Errorf("pod %s: running needs a target address (Start or SetTarget): %w", podID, errdefs.ErrInvalidArgument)
	}
	prev := p.state
	p.state = state
	p.mu.Unlock()
	if state == Running {
		f.syncKernel(ctx, p)
	}
	if prev == Running && state != Running {
		f.abortConns(p)
	}
	return nil
}

// abortConns closes the connections relayed to the pod: the sandbox
// behind them is gone or frozen, and their clients should not wait for
// the idle timeout.
func (f *forwarder) abortConns(p *podEntry) {
	f.mu.Lock()
	var ls []*listener
	for _, pe := range p.ports {
		if pe.ln != nil {
			ls = append(ls, pe.ln)
		}
	}
	f.mu.Unlock()
	for _, l := range ls {
		for _, c := range l.snapshot() {
			c.abort(false)
		}
	}
}

func (f *forwarder) SetStateIf(podID string, state State, proceed func(PodStats) bool) error {
	if state == Running || !state.valid() {
		return fmt.Errorf("pod %s: state %q: want %s or %s: %w", podID, state, NotRunning, Hibernated, errdefs.ErrInvalidArgument)
	}
	p, err := f.lookup(podID)
	if err != nil {
		return err
	}
	ctx, cancel := f.kernelCtx()
	defer cancel()
	// kmu held throughout keeps a concurrent sync (a wake) from putting
	// the rules back under the check.
	p.kmu.Lock()
	defer p.kmu.Unlock()
	p.mu.Lock()
	prev := p.state
	p.mu.Unlock()
	if prev != Running {
		f.kernelOff(ctx, p) // as SetState: no rules outside Running
		p.mu.Lock()
		p.state = state
		p.mu.Unlock()
		return nil
	}
	// New connections now fall to the listeners and wait there (pending,
	// or closed when NotRunning); those already on the kernel path keep
	// going while proceed looks.
	began, err := f.kernelDetach(ctx, p)
	if err != nil {
		// As SetState would: the rules go with their flows, and proceed
		// sees only the counters.
		f.kernelFailed("detach", podID, err)
		f.kernelOff(ctx, p)
		began = 0
	}
	p.mu.Lock()
	p.state = state
	p.mu.Unlock()
	if began == 0 && proceed(f.podStats(podID)) {
		f.kernelCut(ctx, p)
		f.abortConns(p)
		return nil
	}
	p.mu.Lock()
	p.state = Running
	p.mu.Unlock()
	f.syncKernelLocked(ctx, p)
	if began > 0 {
		return fmt.Errorf("pod %s: %d connection(s) on the kernel path: %w", podID, began, ErrActive)
	}
	return fmt.Errorf("pod %s: %w", podID, ErrActive)
}

func (f *forwarder) lookup(podID string) (*podEntry, error) {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pods[podID]
	if p == nil {
		return nil, fmt.Errorf("pod %s: %w", podID, errdefs.ErrNotFound)
	}
	return p, nil
}
