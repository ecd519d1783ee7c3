package pods

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/supervisor"
)

// maxRestarts is how many times in a row a pod whose sandbox died is
// brought up again before it is left failed; a pod that ran for
// restartsResetAfter before dying starts counting afresh.
const (
	maxRestarts        = 3
	restartsResetAfter = 10 * time.Minute
)

// watch follows a running pod's sandbox and handles its death.
func (m *Manager) watch(id string) {
	ctx, cancel := context.WithCancel(m.bg)
	m.watchMu.Lock()
	if old := m.watchers[id]; old != nil {
		old()
	}
	m.watchers[id] = cancel
	m.watchMu.Unlock()
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		m.watchOOM(ctx, id)
	}()
	go func() {
		defer m.wg.Done()
		info, err := m.cfg.Runtime.Wait(ctx, id)
		if ctx.Err() != nil {
			return // stopped on purpose, or the node is shutting down
		}
		m.sandboxDied(id, info.OOMKilled, describeExit(info, err))
	}()
}

func (m *Manager) unwatch(id string) {
	m.watchMu.Lock()
	if cancel := m.watchers[id]; cancel != nil {
		cancel()
		delete(m.watchers, id)
	}
	m.watchMu.Unlock()
}

func describeExit(info oci.ExitInfo, err error) string {
	switch {
	case info.OOMKilled:
		return "sandbox killed: out of memory (memory limit reached)"
	case err != nil:
		return fmt.Sprintf("sandbox died: %v", err)
	case info.Unknown:
		return "sandbox exited; its status is unknown (the node adopted it after a restart, so could not reap it)"
	default:
		return fmt.Sprintf("sandbox exited with status %d", info.Code)
	}
}

// sandboxDied records the death as an event, fails the pod, and brings it
// up again unless it has died too often in a row.
func (m *Manager) sandboxDied(id string, oom bool, reason string) {
	unlock := m.lock(id)
	defer unlock()
	ctx := m.bg
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil || p.State != lifecycle.Running {
		return // someone stopped or deleted it meanwhile
	}
	typ := "died"
	if oom {
		typ = "oom"
	}
	m.event(ctx, id, typ, "SandboxDied", reason)
	m.portsNotRunning(ctx, id)
	st := m.statusOf(ctx, p)
	if time.Since(p.StateChangedAt) > restartsResetAfter {
		st.Restarts = 0 // it had been running fine: not "in a row"
	}
	// The death is recorded before the teardown (which takes a while), so
	// no client sees a dead pod as running; a crash in between leaves a
	// failed pod with its rootfs mounted, which Recover brings down.
	_, terr := m.cfg.Store.TransitionWith(ctx, id, lifecycle.Failed, reason, func(p *store.Pod) error {
		st.Restarts++
		b, err := json.Marshal(st)
		p.Status = b
		return err
	})
	if terr != nil {
		m.log.Warn("recording a dead sandbox", "pod", id, "err", terr)
	}
	if err := m.bringDown(ctx, id); err != nil {
		m.log.Warn("cleaning up dead sandbox", "pod", id, "err", err)
	}
	if terr != nil || st.Restarts > maxRestarts {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(st.Restarts) * time.Second):
	}
	m.event(ctx, id, "restart", "RestartPolicy", fmt.Sprintf("restarting (attempt %d of %d)", st.Restarts, maxRestarts))
	if err := m.start(ctx, id); err != nil {
		m.log.Warn("restarting pod", "pod", id, "err", err)
	}
}

// oomPoll is how often a running pod's memory cgroup is checked for OOM
// kills: reading two small cgroup files, cheap enough for every pod.
const oomPoll = 2 * time.Second

// watchOOM reports OOM kills that leave the sandbox alive (the kernel
// killed a process inside the pod): an "oom" event naming the services
// that died of it. Their own restart policy, run by init, applies.
func (m *Manager) watchOOM(ctx context.Context, id string) {
	cg := m.cgroupsPath(id)
	last, _ := oci.OOMKills(cg)
	t := time.NewTicker(oomPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, ok := oci.OOMKills(cg)
		if !ok || n <= last {
			continue
		}
		killed := n - last
		last = n
		msg := fmt.Sprintf("out of memory: the kernel killed %d process(es) at the pod's memory limit", killed)
		if st, err := supervisor.ReadStatus(m.statusFile(id)); err == nil {
			var hit []string
			for _, s := range st.Services {
				if s.LastExitCode != nil && *s.LastExitCode == 137 {
					hit = append(hit, s.Name)
				}
			}
			if len(hit) > 0 {
				msg += "; services killed: " + strings.Join(hit, ", ")
			}
		}
		m.event(ctx, id, "oom", "OOMKilled", msg)
	}
}
