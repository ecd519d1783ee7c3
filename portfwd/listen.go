package portfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// listener is one host port being served: its accept loop and the
// connections it accepted. Stop drains it as a unit.
type listener struct {
	f    *forwarder
	pod  *podEntry
	port *portEntry
	ln   *net.TCPListener

	// ctx is cancelled when the drain gives up; it aborts connections
	// still resolving, waking or dialling.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loop and connection goroutines

	mu     sync.Mutex
	conns  map[*proxyConn]struct{}
	killed bool // set once the drain gave up; late conns close at once
}

func (f *forwarder) Start(ctx context.Context, podID string, target netip.Addr) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	if !target.IsValid() {
		return fmt.Errorf("pod %s: invalid target address: %w", podID, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := f.listen(podID, target)
	if err != nil {
		return err
	}
	// Listeners first, rules second: the port is ours before the kernel
	// sends anything to the pod, and a failed Apply leaves a working
	// userspace path.
	f.syncKernel(ctx, p)
	return nil
}

// listen binds the pod's ports and serves them (Start without the kernel
// path).
func (f *forwarder) listen(podID string, target netip.Addr) (*podEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("portfwd: closed: %w", errdefs.ErrUnavailable)
	}
	p := f.pod(podID)
	p.mu.Lock()
	p.target, p.state = target.Unmap(), Running
	p.mu.Unlock()

	var opened []*portEntry
	for _, pe := range p.ports {
		if pe.ln != nil {
			continue
		}
		addr := netip.AddrPortFrom(f.addrOf(pe.alloc), pe.alloc.HostPort)
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(addr))
		if err != nil {
			for _, o := range opened { // all or nothing
				o.ln.ln.Close()
				o.ln.cancel()
				o.ln = nil
			}
			return nil, fmt.Errorf("pod %s: port %s: listen: %w", podID, pe.alloc.key(), portInUse(addr, err))
		}
		l := &listener{f: f, pod: p, port: pe, ln: ln, conns: map[*proxyConn]struct{}{}}
		l.ctx, l.cancel = context.WithCancel(f.ctx)
		pe.ln = l
		opened = append(opened, pe)
	}
	// Serve only once every port is bound, so a rollback never has to
	// drain connections.
	for _, pe := range opened {
		pe.ln.wg.Add(1)
		go pe.ln.serve()
		f.logger.Info("portfwd: listening", "pod", podID, "port", pe.alloc.key(),
			"hostPort", pe.alloc.HostPort, "target", netip.AddrPortFrom(target, pe.alloc.PodPort))
	}
	return p, nil
}

func (f *forwarder) Stop(ctx context.Context, podID string) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	f.mu.Lock()
	p := f.pods[podID]
	f.mu.Unlock()
	if p == nil {
		return nil
	}
	// The rules go first: until the listeners close, new connections
	// fall to them.
	f.forceKernelOff(ctx, p)
	f.mu.Lock()
	ls := takeListeners(p)
	f.mu.Unlock()
	f.drain(ctx, ls)
	return nil
}

// forceKernelOff removes the pod's rules whatever its state.
func (f *forwarder) forceKernelOff(ctx context.Context, p *podEntry) {
	if f.kernel == nil {
		return
	}
	p.kmu.Lock()
	f.kernelOff(ctx, p)
	p.kmu.Unlock()
}

// takeListeners detaches the pod's listeners. Callers hold f.mu.
func takeListeners(p *podEntry) []*listener {
	var ls []*listener
	for _, pe := range p.ports {
		if pe.ln != nil {
			ls = append(ls, pe.ln)
			pe.ln = nil
		}
	}
	return ls
}

// drain stops accepting on ls, waits for their connections until ctx ends
// or the drain timeout passes, then closes what is left and waits for it.
func (f *forwarder) drain(ctx context.Context, ls []*listener) {
	if len(ls) == 0 {
		return
	}
	for _, l := range ls {
		l.ln.Close()
	}
	done := make(chan struct{})
	go func() {
		for _, l := range ls {
			l.wg.Wait()
		}
		close(done)
	}()
	timer := time.NewTimer(f.drainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-ctx.Done():
	case <-timer.C:
	}
	n := 0
	for _, l := range ls {
		n += l.kill()
	}
	f.logger.Info("portfwd: drain deadline passed, closed open connections", "pod", ls[0].pod.id, "conns", n)
	<-done
}

// kill aborts every connection of l and any still being set up.
func (l *listener) kill() int {
	l.cancel()
	l.mu.Lock()
	l.killed = true
	conns := make([]*proxyConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.abort(true)
	}
	return len(conns)
}

func (f *forwarder) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	pods := make([]*podEntry, 0, len(f.pods))
	for _, p := range f.pods {
		pods = append(pods, p)
	}
	f.mu.Unlock()
	// Rules go first, as in Stop. A daemon that stops takes its ports
	// with it, kernel path or not; the next one re-applies at adoption.
	for _, p := range pods {
		f.forceKernelOff(ctx, p)
	}
	f.mu.Lock()
	var ls []*listener
	for _, p := range pods {
		ls = append(ls, takeListeners(p)...)
	}
	f.mu.Unlock()
	f.drain(ctx, ls)
	f.cancel()
	<-f.sweepDone
	return nil
}

// serve is the accept loop.
func (l *listener) serve() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off as net/http does rather
			// than spin, and keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.f.logger.Warn("portfwd: accept failed", "pod", l.pod.id, "hostPort", l.port.alloc.HostPort, "err", err, "retryIn", backoff)
			select {
			case <-time.After(backoff):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		st := &l.port.stats
		st.total.Add(1)
		// Only this loop increments active, so the check cannot overshoot.
		if st.active.Load() >= int64(l.f.maxConns) {
			st.rejected.Add(1)
			c.SetLinger(0) // RST: an explicit refusal, and no TIME_WAIT here
			c.Close()
			continue
		}
		st.active.Add(1)
		st.pending.Add(1) // handle ends it
		l.wg.Add(1)
		go l.handle(c)
	}
}

func (l *listener) register(c *proxyConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *listener) unregister(c *proxyConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

func (l *listener) snapshot() []*proxyConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*proxyConn, 0, len(l.conns))
	for c := range l.conns {
		out = append(out, c)
	}
	return out
}

// addrOf is the host address a's port listens on.
func (f *forwarder) addrOf(a Allocation) netip.Addr {
	if a.Public {
		return f.publicAddr
	}
	return f.listenAddr
}
