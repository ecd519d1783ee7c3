package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/portfwd"
)

// ActivityFile is the file, in the pod's run directory (/.pinacle/run
// inside the sandbox), that a service touches to say it is busy: a pod
// whose file changed within its idle timeout is not idle.
const ActivityFile = "activity"

// What counts as activity (docs/hibernate.md): a connection forwarded
// to one of the pod's host ports or a byte through one (the forwarder's
// counters, userspace and kernel path, and for a relayed connection the
// last byte its sockets moved); a connection waiting for the pod's wake
// or for the dial to it; an exec or terminal session open, begun or
// ended; a touch of ActivityFile; the pod becoming running. An open
// connection with nothing moving is not activity.

// idleMark is what the idle sweep last saw of one pod's traffic, and when
// it changed.
type idleMark struct {
	conns, bytes uint64
	since        time.Time
}

// idleCheckDefault is how often pods are looked at, at most.
const idleCheckDefault = 15 * time.Second

// idleCheck is how often the sweep runs: often enough for the node-wide
// default timeout to be kept within a third of itself.
func (m *Manager) idleCheck() time.Duration {
	if m.cfg.IdleCheck > 0 {
		return m.cfg.IdleCheck
	}
	d := idleCheckDefault
	if t := m.cfg.IdleTimeout / 3; t > 0 && t < d {
		d = max(t, 100*time.Millisecond)
	}
	return d
}

// idleLoop hibernates running pods that stayed idle for their timeout,
// until the manager closes.
func (m *Manager) idleLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.idleCheck())
	defer t.Stop()
	marks := map[string]*idleMark{}
	for {
		select {
		case <-m.bg.Done():
			return
		case <-t.C:
		}
		m.idleSweep(marks, time.Now())
	}
}

// idleTimeout is the pod's own idleTimeout, or the node's default.
func (m *Manager) idleTimeout(p *store.Pod) time.Duration {
	if spec, err := decodeSpec(p); err == nil && spec.IdleTimeout.Duration > 0 {
		return spec.IdleTimeout.Duration
	}
	return m.cfg.IdleTimeout
}

// idleSweep looks at every running pod with an idle timeout once.
func (m *Manager) idleSweep(marks map[string]*idleMark, now time.Time) {
	pods, err := m.cfg.Store.ListPods(m.bg)
	if err != nil {
		m.log.Warn("idle sweep", "err", err)
		return
	}
	timeouts := map[string]time.Duration{}
	for i := range pods {
		if p := &pods[i]; p.State == lifecycle.Running {
			if t := m.idleTimeout(p); t > 0 {
				timeouts[p.ID] = t
			}
		}
	}
	for id := range marks { // pods that left running or lost their timeout
		if _, ok := timeouts[id]; !ok {
			delete(marks, id)
		}
	}
	if len(timeouts) == 0 {
		return // the counters cost an iptables-save: only when needed
	}
	traffic := m.podTraffic()
	for i := range pods {
		p := &pods[i]
		timeout, ok := timeouts[p.ID]
		if !ok {
			continue
		}
		mk := marks[p.ID]
		if mk == nil {
			mk = &idleMark{}
			marks[p.ID] = mk
		}
		if !m.idleFor(p, mk, traffic[p.ID], now, timeout) {
			continue
		}
		delete(marks, p.ID)
		id, seen := p.ID, *mk
		skew := now.Sub(time.Now()) // the sweep's clock (tests set it ahead)
		m.background(id, func(ctx context.Context) error {
			return m.idleHibernate(ctx, id, timeout, seen, func() time.Time { return time.Now().Add(skew) })
		})
	}
}

// podTraffic is the forwarder's view of each pod's connections.
func (m *Manager) podTraffic() map[string]portfwd.PodStats {
	out := map[string]portfwd.PodStats{}
	for _, ps := range m.cfg.Ports.Stats().Pods {
		out[ps.PodID] = ps
	}
	return out
}

// idleFor updates pod p's mark with its traffic and says whether nothing
// counted as activity for timeout. A connection waiting for a wake or a
// dial, or an open exec session, is activity as long as it lasts.
func (m *Manager) idleFor(p *store.Pod, mk *idleMark, ps portfwd.PodStats, now time.Time, timeout time.Duration) bool {
	c := ps.Counters
	if mk.since.IsZero() || mk.conns != c.ConnsTotal || mk.bytes != c.BytesIn+c.BytesOut {
		*mk = idleMark{conns: c.ConnsTotal, bytes: c.BytesIn + c.BytesOut, since: now}
	}
	open, lastExec := m.execs.activity(p.ID)
	if open || c.ConnsPending > 0 {
		return false
	}
	last := latest(latest(mk.since, p.StateChangedAt), latest(lastExec, ps.LastActive))
	if fi, err := os.Stat(filepath.Join(m.runDir(p.ID), ActivityFile)); err == nil {
		last = latest(last, fi.ModTime())
	}
	return now.Sub(last) >= timeout
}

// idleHibernate hibernates pod id (under its lock) if it is still idle:
// between the sweep and now a connection may have come, or may be
// waiting on the kernel path that the hibernate is about to cut. seen is
// the sweep's mark, now its clock.
func (m *Manager) idleHibernate(ctx context.Context, id string, timeout time.Duration, seen idleMark, now func() time.Time) error {
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil || p.State != lifecycle.Running {
		return err
	}
	if !m.idleFor(p, &seen, m.podTraffic()[id], now(), timeout) {
		m.log.Debug("idle hibernate called off: activity since the sweep", "pod", id)
		return nil
	}
	m.event(ctx, id, "idle", "IdleTimeout", fmt.Sprintf("no activity for %s; hibernating", timeout))
	// Asked again once new connections wait at the listeners instead of
	// reaching the sandbox: one that came since this look is counted
	// then, and its flow is still whole.
	stillIdle := func(ps portfwd.PodStats) bool {
		mk := seen
		return m.idleFor(p, &mk, ps, now(), timeout)
	}
	err = m.hibernateIf(ctx, id, stillIdle)
	switch {
	case errors.Is(err, portfwd.ErrActive):
		m.log.Info("idle hibernate called off: a connection came as it began", "pod", id)
		return nil
	case err != nil:
		m.log.Warn("idle hibernate", "pod", id, "err", err)
		return err
	}
	return nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
