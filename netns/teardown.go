package netns

// Undoing a network: Teardown from the record alone, and node rules.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/iptables"
)

func (m *manager) Teardown(ctx context.Context, podID string) error {
	if err := errdefs.ValidateID("pod", podID); err != nil {
		return err
	}
	defer m.lock(podID)()
	return m.teardown(ctx, podID)
}

// teardownNetwork undoes the CNI side of a network whose namespace is
// alive or not: DEL through the plugins, then by name what they could not
// remove (chains, links). It returns what failed, having tried every step.
func (m *manager) teardownNetwork(ctx context.Context, log *slog.Logger, a *Attachment, alive bool) []error {
	m.killStalePlugins(ctx) // one still at work would redo what this undoes
	if alive && a.IP.IsValid() && bytes.Contains(a.ConfList, []byte(`"ipMasq":true`)) {
		// A record from before the node did its own masquerade: runsc
		// strips the address, and without it the bridge plugin's DEL
		// cannot tell which masquerade rules are the pod's.
		if err := restoreAddr(a.NetnsPath, a.Interface, a.Prefix(), netip.Addr{}); err != nil {
			log.Debug("re-add address before DEL", "err", err)
		}
	}
	nsPath := ""
	if alive {
		nsPath = a.NetnsPath
	}
	list, err := libcni.NetworkConfFromBytes(a.ConfList)
	if err == nil {
		err = m.cni.DelNetworkList(ctx, list, m.runtimeConf(a, nsPath))
	}
	if err != nil {
		// Not fatal: everything the plugins create is removed by name
		// below (veth dies with the netns, the lease with the per-pod
		// IPAM dir), so a broken or missing plugin cannot wedge teardown.
		log.Warn("cni del failed; cleaning up by name", "err", err)
	}
	// What the plugins could not clean up (netns gone, address missing,
	// DEL failed) we remove ourselves: the names are deterministic.
	var errs []error
	filter := []string{a.EgressChain, a.HostChain}
	if a.DomainChain != "" {
		filter = append(filter, a.DomainChain) // after E, which jumps to it
	}
	if err := m.removeChainsIn(ctx, map[string][]string{
		"nat":    {a.MasqChain},
		"filter": filter,
	}); err != nil {
		errs = append(errs, err)
	}
	for _, l := range []string{a.IfbDevice, a.Bridge} {
		if err := deleteLink(l); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// teardown undoes everything in reverse and keeps going past failures, so
// one stuck step does not leak the rest; the record is removed only when
// every step succeeded, so a retry can finish the job.
func (m *manager) teardown(ctx context.Context, podID string) error {
	return m.teardownKeep(ctx, podID, false)
}

// teardownKeep is teardown; with keepSubnet the subnet stays reserved
// (Remake sets the network up again on it).
func (m *manager) teardownKeep(ctx context.Context, podID string, keepSubnet bool) error {
	a, err := m.load(podID)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	log := m.log.With("pod", podID)
	var errs []error
	alive := nsAlive(a.NetnsPath)
	m.stopDNSFilter(podID) // before its chain goes

	if a.Mode != ModeNone && len(a.ConfList) > 0 {
		errs = append(errs, m.teardownNetwork(ctx, log, a, alive)...)
	}
	if err := removeNamedNS(a.NetnsPath); err != nil {
		errs = append(errs, err)
	}
	if a.Network != "" {
		// host-local keeps a per-network dir with its lock and
		// last-reserved files even when no lease is left; the network is
		// ours alone, so the whole dir goes, and any lease with it. The
		// libcni cache entry goes too in case DEL did not get to it.
		if err := os.RemoveAll(filepath.Join(m.ipamDir(), a.Network)); err != nil {
			errs = append(errs, err)
		}
		cached := filepath.Join(m.cacheDir(), "results", a.Network+"-"+a.ContainerID+"-"+a.Interface)
		if err := os.Remove(cached); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("pod %s: teardown: %w", podID, errors.Join(errs...))
	}
	if a.Mode != ModeNone && !keepSubnet {
		owner := a.SubnetOwner
		if owner == "" {
			owner = podID
		}
		if err := m.store.Release(ctx, owner); err != nil {
			return fmt.Errorf("pod %s: release subnet: %w", podID, err)
		}
	}
	if err := os.Remove(m.recordPath(podID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	log.Debug("network removed")
	return nil
}

func (m *manager) removeChains(ctx context.Context, table string, chains ...string) error {
	return m.removeChainsIn(ctx, map[string][]string{table: chains})
}

// removeChainsIn removes chains and every jump to them, in several tables
// with one iptables-save and one iptables-restore (each exec costs ms).
func (m *manager) removeChainsIn(ctx context.Context, byTable map[string][]string) error {
	m.iptMu.Lock()
	defer m.iptMu.Unlock()
	dump, err := iptables.Save(ctx)
	if err != nil {
		return err
	}
	tables := splitTables(dump)
	lines := map[string][]string{}
	for table, chains := range byTable {
		lines[table] = removeChainsLines(tables[table], chains...)
	}
	return iptables.Restore(ctx, lines)
}

func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func (m *manager) RemoveNodeRules(ctx context.Context) error {
	pods, err := m.List(ctx)
	if err != nil {
		return err
	}
	if len(pods) > 0 {
		return fmt.Errorf("node rules: %d pod(s) still have networks: %w", len(pods), errdefs.ErrConflict)
	}
	if err := m.DrainWarmPool(ctx); err != nil {
		return err
	}
	m.iptMu.Lock()
	m.nodeChains = false
	m.iptMu.Unlock()
	return m.removeChains(ctx, "filter", m.nodeForward(), m.nodeInput())
}
