package pods

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/portfwd"
)

// Recover brings the node's view back in line with the host after a start
// (or a crash): running sandboxes are adopted with their forwarders, and
// operations a crash interrupted are finished or undone.
func (m *Manager) Recover(ctx context.Context) error {
	pods, err := m.cfg.Store.ListPods(ctx)
	if err != nil {
		return err
	}
	for i := range pods {
		p := &pods[i]
		unlock := m.lock(p.ID)
		err := m.recoverPod(ctx, p.ID)
		unlock()
		if err != nil {
			m.log.Warn("recovering pod", "pod", p.ID, "err", err)
		}
	}
	// Warm sandboxes a dead daemon left (docs/warmpool.md): none is
	// adopted, RunWarm boots new ones.
	m.removeWarmLeftovers(ctx)
	return nil
}

func (m *Manager) recoverPod(ctx context.Context, id string) error {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return err
	}
	if p.State != lifecycle.Running {
		// A runsc that the dead node had started for this pod may still be
		// going: finishing after the undo below, it would boot a sandbox
		// (and an init writing a status file) that nobody tracks.
		if err := m.cfg.Runtime.KillStale(ctx, id); err != nil {
			return err
		}
	}
	switch p.State {
	case lifecycle.Running:
		return m.recoverRunning(ctx, p)
	case lifecycle.Provisioning, lifecycle.Starting:
		// Undo the half-done start, then do it again from the beginning.
		if err := m.bringDown(ctx, id); err != nil {
			return m.fail(ctx, id, fmt.Errorf("node restarted during %s; cleanup: %w", p.State, err))
		}
		if _, err := m.cfg.Store.Transition(ctx, id, lifecycle.Failed, "node restarted during "+string(p.State)); err != nil {
			return err
		}
		m.background(id, func(ctx context.Context) error { return m.start(ctx, id) })
		return nil
	case lifecycle.Stopping:
		if err := m.bringDown(ctx, id); err != nil {
			return m.fail(ctx, id, err)
		}
		_, err := m.cfg.Store.Transition(ctx, id, lifecycle.Stopped, "")
		return err
	case lifecycle.Terminating:
		return m.terminate(ctx, id)
	case lifecycle.Hibernating:
		return m.recoverHibernating(ctx, p)
	case lifecycle.Waking:
		// Wake again: a restore that completed is kept (wakeSteps).
		m.background(id, func(ctx context.Context) error { return m.wakeUp(ctx, p, wakeMode{resumed: true}) })
		return nil
	case lifecycle.Hibernated:
		if err := m.deleteSandbox(ctx, id); err != nil {
			m.event(ctx, id, "warning", "CleanupFailed", "sandbox: "+err.Error())
		}
		m.listenHibernated(ctx, id, m.statusOf(ctx, p))
	case lifecycle.Stopped, lifecycle.Failed, lifecycle.Pending:
		// Nothing may run for these; make sure nothing does (idempotent:
		// deleting a sandbox that is not there is fine).
		// A failure is the pod's event; recovery goes on with the rest.
		if err := m.deleteSandbox(ctx, id); err != nil {
			m.event(ctx, id, "warning", "CleanupFailed", "sandbox: "+err.Error())
		}
		// A crash in the middle of the teardown that follows a sandbox's
		// death (recorded failed first) leaves the rootfs mounted, or the
		// network up: either is brought down.
		mounted, err := m.cfg.Rootfs.Mounted(m.podDir(id))
		if err != nil {
			m.event(ctx, id, "warning", "CleanupFailed", "rootfs: "+err.Error())
		}
		if mounted || m.hasNetwork(ctx, id) {
			return m.bringDown(ctx, id)
		}
		if p.State == lifecycle.Pending {
			m.background(id, func(ctx context.Context) error { return m.provision(ctx, id) })
		}
		m.portsNotRunning(ctx, id)
	}
	return nil
}

// hasNetwork says whether the network layer still holds a network for
// the pod (a failure to read the record counts: bringing it down says
// what is wrong).
func (m *Manager) hasNetwork(ctx context.Context, id string) bool {
	_, err := m.cfg.Net.Get(ctx, id)
	return !errdefs.IsNotFound(err)
}

// portsNotRunning tells the forwarder the pod cannot take connections; a
// failure (connections left open to a dead backend) becomes an event.
func (m *Manager) portsNotRunning(ctx context.Context, id string) {
	if err := m.cfg.Ports.SetState(id, portfwd.NotRunning); err != nil {
		m.event(ctx, id, "port", "SetStateFailed", err.Error())
	}
}

// recoverRunning adopts a pod recorded running whose sandbox lived through
// the node's absence (forwarder and watchers back), or treats it as a
// death when the sandbox is gone.
func (m *Manager) recoverRunning(ctx context.Context, p *store.Pod) error {
	id := p.ID
	if m.sandboxRunning(ctx, id) {
		// Adopt: the sandbox lived through our absence.
		st := m.statusOf(ctx, p)
		if ip, err := netip.ParseAddr(st.IP); err == nil {
			if err := m.cfg.Ports.Start(ctx, id, ip); err != nil {
				m.event(ctx, id, "port", "AdoptFailed", err.Error())
			}
		}
		m.watch(id)
		m.event(ctx, id, "adopted", "NodeRestart", "sandbox running; adopted after node restart")
		return nil
	}
	// It died while we were away: treat it as any death.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.sandboxDied(id, false, "sandbox gone after node restart")
	}()
	return nil
}
