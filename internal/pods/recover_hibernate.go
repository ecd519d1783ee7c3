package pods

import (
	"context"
	"net/netip"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/portfwd"
)

// sandboxRunning says whether pod id's sandbox runs: runsc says so and
// its process is there. runsc's state file can still say running for a
// sandbox killed while the node was away, so the state alone is not
// trusted. Recovery of running, hibernating and waking pods all decide
// with this one check.
func (m *Manager) sandboxRunning(ctx context.Context, id string) bool {
	s, err := m.cfg.Runtime.State(ctx, id)
	if err != nil || s.Status != oci.StatusRunning {
		return false
	}
	return s.Pid <= 0 || syscall.Kill(s.Pid, 0) != syscall.ESRCH
}

// recoverHibernating settles a hibernate the node's death interrupted:
// a complete checkpoint makes the pod hibernated (runsc stops a sandbox
// once its checkpoint is written, though for a moment it may still look
// running); otherwise a sandbox that still runs keeps running; with
// neither, the pod starts afresh from its files, and an event says so.
func (m *Manager) recoverHibernating(ctx context.Context, p *store.Pod) error {
	id := p.ID
	st := m.statusOf(ctx, p)
	u := m.unitFor(id)
	switch {
	case m.checkpointed(id) != nil:
		if err := m.deleteSandbox(ctx, id); err != nil {
			m.event(ctx, id, "warning", "CleanupFailed", "sandbox: "+err.Error())
		}
		if _, err := m.cfg.Store.Transition(ctx, id, lifecycle.Hibernated, ""); err != nil {
			return err
		}
		m.listenHibernated(ctx, id, st)
		m.event(ctx, id, "hibernate", "Hibernated", "node restarted during hibernate after the checkpoint was complete")
		return nil
	case m.sandboxRunning(ctx, id):
		if err := discardCheckpoint(ctx, u); err != nil {
			m.event(ctx, id, "warning", "CleanupFailed", "checkpoint: "+err.Error())
		}
		if _, err := m.cfg.Store.Transition(ctx, id, lifecycle.Running, ""); err != nil {
			return err
		}
		if ip, err := netip.ParseAddr(st.IP); err == nil {
			if err := m.cfg.Ports.Start(ctx, id, ip); err != nil {
				m.event(ctx, id, "port", "AdoptFailed", err.Error())
			}
		}
		m.watch(id)
		m.event(ctx, id, "hibernate", "HibernateInterrupted", "node restarted during hibernate; the sandbox still ran, so the pod runs on")
		return nil
	}
	m.event(ctx, id, "warning", "HibernateLost", "node restarted during hibernate before the checkpoint was complete; starting the pod afresh from its files")
	if err := m.bringDown(ctx, id); err != nil {
		return m.fail(ctx, id, err)
	}
	if _, err := m.cfg.Store.Transition(ctx, id, lifecycle.Failed, "node restarted during hibernating"); err != nil {
		return err
	}
	m.background(id, func(ctx context.Context) error { return m.start(ctx, id) })
	return nil
}

// listenHibernated binds a hibernated pod's host ports after a node
// start, so that the first connection wakes it. (Start marks the pod
// running, for the moment until SetState: a connection in between finds
// no sandbox at the address and is retried by its client's TCP.)
func (m *Manager) listenHibernated(ctx context.Context, id string, st podStatus) {
	ip, err := netip.ParseAddr(st.IP)
	if err == nil {
		err = m.cfg.Ports.Start(ctx, id, ip)
	}
	if err == nil {
		err = m.cfg.Ports.SetState(id, portfwd.Hibernated)
	}
	if err != nil {
		m.event(ctx, id, "port", "ListenFailed", "host ports of the hibernated pod: "+err.Error())
	}
}
