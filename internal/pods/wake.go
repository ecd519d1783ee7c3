package pods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/oci"
)

// wakeSteps restore a hibernated pod's sandbox from its checkpoint: the
// same processes with their memory, at the same address, behind the same
// host ports. A failure undoes what completed; the caller then starts the
// pod afresh from its files (coldStart). Each step is a crash point
// (wake:NAME); Recover runs a wake it finds interrupted again.
//
// A function, not a variable: its steps reach, through the watcher's
// restart, back to the operations that run it.
func wakeSteps() steps[*unit] {
	return steps[*unit]{crash: true, verb: "wake", list: []step[*unit]{
		// runsc took the address off eth0 when it made the sandbox; restore
		// needs it back (design.md).
		{name: "network", do: restoreAddress},
		{name: "rootfs", do: ensureRootfs},
		{name: "restore", do: restoreSandbox, undo: removeRestored, partial: true},
		// Before the wake returns to a forwarder waiting on it: the DNAT
		// rules' Apply cuts flows to the pod, so applying them after the
		// waiting connections were relayed reset one of them (seen in
		// TestHibernateWakeOnConnect).
		{name: "forward", do: startForwarding, undo: portsHibernated},
		{name: "watch", do: watchSandbox, undo: unwatchSandbox},
		// The image has served its purpose; a later hibernate writes a new one.
		{name: "cleanup", do: discardCheckpoint},
	}}
}

// wakeMode says who asked for a wake.
type wakeMode struct {
	// resumed: recovery runs again a wake a crash interrupted, so the
	// sandbox may already be restored. (A runsc state costs a runsc
	// exec, so an ordinary wake does not ask.)
	resumed bool
}

func restoreAddress(ctx context.Context, u *unit) error {
	ip, err := netip.ParseAddr(u.st.IP)
	if err != nil {
		return fmt.Errorf("recorded address %q: %w", u.st.IP, err)
	}
	u.att = &netns.Attachment{PodID: u.id, IP: ip, NetnsPath: u.st.NetnsPath}
	if u.wake.resumed && u.m.sandboxRunning(ctx, u.id) {
		// Restored before a crash: the address is netstack's now, and
		// on eth0 the host's stack would answer (and reset) its flows.
		return nil
	}
	if _, err := os.Stat(u.st.NetnsPath); errors.Is(err, fs.ErrNotExist) {
		return remakeNetwork(ctx, u, ip)
	}
	return u.m.cfg.Net.RestoreAddress(ctx, u.id)
}

// remakeNetwork sets the pod's network up again when its namespace is
// gone (the machine restarted while the pod slept), on the subnet its
// record names, kept reserved throughout (netns Remake: between a
// teardown and a setup, the warm pool's refill took it, seen in
// TestHibernateWakeAfterMachineRestart), so that it gets the same
// address, which the restored sandbox's sockets are bound to. Any other
// address fails the wake (a cold start follows).
func remakeNetwork(ctx context.Context, u *unit, ip netip.Addr) error {
	if bits := u.m.cfg.SubnetBits; bits > 0 && bits <= ip.BitLen() {
		// For a network whose record went with the machine's state:
		// without a subnet asked for, a default network would be a warm
		// pool entry's, on another address.
		u.nspec.Subnet = netip.PrefixFrom(ip, bits).Masked()
	}
	att, err := u.m.cfg.Net.Remake(ctx, u.nspec)
	if err != nil {
		return err
	}
	if att.IP != ip {
		return fmt.Errorf("network made again with address %s, not the checkpoint's %s", att.IP, ip)
	}
	u.att = att
	if att.NetnsPath != u.st.NetnsPath {
		// A claimed warm entry's namespace had the entry's name; the
		// remade one has the pod's, and the bundle must say so.
		if err := oci.SetNetNS(u.m.bundleDir(u.id), att.NetnsPath); err != nil {
			return err
		}
	}
	u.st.NetnsPath = att.NetnsPath
	return u.m.cfg.Net.RestoreAddress(ctx, u.id)
}

// ensureRootfs mounts the pod's rootfs if it is not (the host rebooted
// while the pod slept); a hibernate leaves it mounted.
func ensureRootfs(ctx context.Context, u *unit) error {
	mounted, err := u.rootfs.Mounted(u.dir)
	if err != nil || mounted {
		return err
	}
	img, err := findImage(ctx, &u.base)
	if err != nil {
		return err
	}
	u.img = img
	rfs, err := u.rootfs.Mount(ctx, img.LayerDirs, u.dir, u.ropts)
	if err != nil {
		return err
	}
	u.rfs = rfs
	return nil
}

// restoreSandbox restores the checkpoint. A sandbox already running was
// restored by a wake a crash interrupted; any other is a leftover.
func restoreSandbox(ctx context.Context, u *unit) error {
	m, id := u.m, u.id
	if u.wake.resumed && m.sandboxRunning(ctx, id) {
		return nil
	}
	if err := m.deleteSandbox(ctx, id); err != nil {
		return fmt.Errorf("removing a leftover sandbox: %w", err)
	}
	if m.checkpointed(id) == nil {
		return fmt.Errorf("no complete checkpoint: %w", errdefs.ErrNotFound)
	}
	logf, err := os.OpenFile(filepath.Join(m.logDir(id), "sandbox.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	return m.cfg.Runtime.Restore(ctx, id, m.bundleDir(id), oci.RestoreOpts{
		ImagePath: m.checkpointDir(id), CreateOpts: oci.CreateOpts{Stdout: logf, Stderr: logf},
	})
}

func removeRestored(ctx context.Context, u *unit) error { return u.m.deleteSandbox(ctx, u.id) }

// Wake implements api.Service.
func (m *Manager) Wake(ctx context.Context, idOrName string) (*api.Pod, error) {
	return m.runVerb(ctx, idOrName, func(ctx context.Context, id string) error { return m.wake(ctx, id, wakeMode{}) })
}

// WakeForConnection wakes pod id for a connection to one of its host
// ports (the forwarder's portfwd.WakeFunc) and returns where to send it.
func (m *Manager) WakeForConnection(ctx context.Context, id string) (netip.Addr, error) {
	done := m.background(id, func(ctx context.Context) error { return m.wake(ctx, id, wakeMode{}) })
	select {
	case err := <-done:
		if err != nil {
			return netip.Addr{}, err
		}
	case <-ctx.Done():
		return netip.Addr{}, ctx.Err()
	}
	p, err := m.cfg.Store.GetPod(ctx, id)
	if err != nil {
		return netip.Addr{}, err
	}
	if p.State != lifecycle.Running {
		return netip.Addr{}, fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrUnavailable)
	}
	st, err := readStatus(p)
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(st.IP)
}

// wake enters waking (or does nothing for a running pod) and wakes it.
func (m *Manager) wake(ctx context.Context, id string, how wakeMode) error {
	dec, p, err := m.cfg.Store.ApplyOp(ctx, id, lifecycle.OpWake, "")
	if err != nil {
		return err
	}
	switch dec.Action {
	case lifecycle.NoOp:
		return nil
	case lifecycle.Await:
		return fmt.Errorf("pod %s is %s: %w", id, p.State, errdefs.ErrConflict)
	}
	return m.wakeUp(ctx, p, how)
}

// wakeUp runs wakeSteps on a waking pod; when the restore cannot be done
// it says so in an event and starts the pod afresh from its files.
func (m *Manager) wakeUp(ctx context.Context, p *store.Pod, how wakeMode) error {
	id := p.ID
	spec, err := decodeSpec(p)
	if err != nil {
		return m.fail(ctx, id, err)
	}
	st := m.statusOf(ctx, p)
	u, err := m.newUnit(id, spec, &st)
	if err != nil {
		return m.fail(ctx, id, err)
	}
	u.wake = how
	t := &timing{}
	err = wakeSteps().up(ctx, u, t, func(step string, err error) {
		m.log.Warn("undo "+step, "pod", id, "err", err)
	})
	if err == nil {
		_, err = m.cfg.Store.TransitionWith(ctx, id, lifecycle.Running, "", func(p *store.Pod) error {
			b, err := json.Marshal(st)
			p.Status = b
			return err
		})
		if err == nil {
			m.log.Info("pod woke", append([]any{"pod", id}, t.kv...)...)
			m.event(ctx, id, "wake", "Woke", "restored from its checkpoint: processes and memory kept")
			return nil
		}
	}
	if ctx.Err() != nil {
		return m.fail(ctx, id, err)
	}
	m.log.Warn("restore failed; starting the pod afresh", "pod", id, "err", err)
	m.event(ctx, id, "warning", "RestoreFailed", "restore failed: "+err.Error()+"; starting the pod afresh from its files (processes start anew)")
	return m.coldStart(ctx, p)
}

// coldStart brings a pod whose restore failed up from its files: what
// the wake left is taken down (the checkpoint with it) and the pod's
// steps run as for a start. The host ports keep listening throughout:
// the connections waiting for the wake wait for the cold start and are
// served by it. Only if it fails do they close.
func (m *Manager) coldStart(ctx context.Context, p *store.Pod) error {
	m.unwatch(p.ID)
	u := m.unitFor(p.ID)
	u.graceful, u.keepListeners = true, true
	err := podSteps.down(ctx, u)
	if err != nil {
		err = m.fail(ctx, p.ID, fmt.Errorf("cold start after a failed restore: %w", err))
	} else {
		err = m.bringUp(ctx, p)
	}
	if err != nil {
		if serr := stopForwarding(context.WithoutCancel(ctx), m.unitFor(p.ID)); serr != nil {
			m.log.Warn("closing the host ports of a pod that failed", "pod", p.ID, "err", serr)
		}
	}
	return err
}
