package dnat

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/internal/iptables"
	"github.com/pinacle/pinacle-node/portfwd"
)

// kernel drives the rules with one iptables-save -c and one
// iptables-restore --noflush per change: the restore is atomic (a pod's
// rules appear or vanish together) and each exec costs milliseconds, so
// never one per rule. The save comes first because counters live in the
// rules: before a pod's chains are rewritten or removed, their counts are
// folded into base, so counters never go down.
type kernel struct {
	config
	names

	mu   sync.Mutex                             // serialises read-modify-write of the rules
	base map[string]map[uint16]portfwd.Counters // counts of rules since rewritten or removed
	// detached holds, per pod, the flows a Detach left for Cut.
	detached map[string]detached
	// afterSave, set by tests, runs between reading the rules and
	// writing them when a pod's rules go.
	afterSave func()
}

// detached is what taking a pod's rules out leaves behind: the flows the
// kernel still forwards to it and the bridge its route_localnet is on.
type detached struct {
	flows  []flow
	bridge string
}

var _ portfwd.KernelPath = (*kernel)(nil)

// New returns the kernel path after creating the node chains, which also
// proves that iptables, its nat table and the matches used here work; if
// it fails, forward in userspace only.
func New(ctx context.Context, opts ...Option) (portfwd.KernelPath, error) {
	k, err := newKernel(opts...)
	if err != nil {
		return nil, err
	}
	d, unlock, err := k.lockSave(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := k.restore(ctx, k.nodeLines(d)); err != nil {
		return nil, err
	}
	return k, nil
}

func newKernel(opts ...Option) (*kernel, error) {
	c := defaults()
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return &kernel{config: c, names: newNames(c.prefix, c.owner),
		base: map[string]map[uint16]portfwd.Counters{}, detached: map[string]detached{}}, nil
}

func (k *kernel) Apply(ctx context.Context, pod string, target netip.Addr, ports []portfwd.Allocation) error {
	if err := errdefs.ValidateID("pod", pod); err != nil {
		return err
	}
	target = target.Unmap()
	if !target.Is4() {
		return fmt.Errorf("pod %s: target %s: the kernel path is IPv4 only: %w", pod, target, errdefs.ErrInvalidArgument)
	}
	if len(ports) == 0 {
		return k.Remove(ctx, pod)
	}
	bridge, err := routeDev(target)
	if err != nil {
		return fmt.Errorf("pod %s: %w", pod, err)
	}
	if k.localnet() {
		// Before the rules: a DNAT'd connection from 127.0.0.1 is not
		// routable out of the bridge without it. The setting lives and
		// dies with the pod's own bridge.
		if err := setRouteLocalnet(bridge, true); err != nil {
			return fmt.Errorf("pod %s: %w", pod, err)
		}
	}
	d, unlock, err := k.lockSave(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	// The flows a Detach left go on under the rules again (a hibernate
	// called off).
	delete(k.detached, pod)
	lines := k.nodeLines(d) // someone may have removed them (cleanup, a reboot of iptables)
	for t, l := range k.podLines(d, pod, target, ports, bridge) {
		lines[t] = append(lines[t], l...)
	}
	k.fold(d, pod)
	if err := k.restore(ctx, lines); err != nil {
		return fmt.Errorf("pod %s: %w", pod, err)
	}
	k.log.Debug("dnat: applied", "pod", pod, "target", target, "bridge", bridge, "ports", len(ports))
	return nil
}

// lock takes k.mu and the host-wide lock (another daemon on this host may
// edit the same node chains); the returned func releases both.
func (k *kernel) lock(ctx context.Context) (func(), error) {
	k.mu.Lock()
	unlock, err := k.hostLock(ctx)
	if err != nil {
		k.mu.Unlock()
		return nil, err
	}
	return func() { unlock(); k.mu.Unlock() }, nil
}

// lockSave takes the locks and reads the tables under them; on success
// the caller must call unlock.
func (k *kernel) lockSave(ctx context.Context) (map[string]*table, func(), error) {
	unlock, err := k.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	d, err := k.save(ctx)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return d, unlock, nil
}

func (k *kernel) Remove(ctx context.Context, pod string) error { return k.removePod(ctx, pod, false) }

func (k *kernel) Release(ctx context.Context, pod string) error { return k.removePod(ctx, pod, true) }

// removePod is Remove, and with forget also drops the pod's counters.
func (k *kernel) removePod(ctx context.Context, pod string, forget bool) error {
	if err := errdefs.ValidateID("pod", pod); err != nil {
		return err
	}
	unlock, err := k.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	err = k.remove(ctx, pod)
	if forget {
		delete(k.base, pod)
	}
	return err
}

// remove takes the pods' rules out and cuts their flows, those of an
// earlier Detach too. Callers hold k.mu.
func (k *kernel) remove(ctx context.Context, pods ...string) error {
	gone, err := k.strip(ctx, pods...)
	if err != nil {
		return err
	}
	var errs []error
	for i, g := range gone {
		if old, ok := k.detached[pods[i]]; ok {
			delete(k.detached, pods[i])
			errs = append(errs, old.cut())
		}
		errs = append(errs, g.cut())
	}
	return errors.Join(errs...)
}

// strip takes the pods' rules out in one restore, their counters folded
// into base first, and returns what each leaves behind, in order.
// Callers hold k.mu.
func (k *kernel) strip(ctx context.Context, pods ...string) ([]detached, error) {
	d, err := k.save(ctx)
	if err != nil {
		return nil, err
	}
	lines := map[string][]string{}
	gone := make([]detached, 0, len(pods))
	for _, pod := range pods {
		k.removeLines(d, pod, lines)
		flows, bridge := k.podState(d, pod)
		gone = append(gone, detached{flows, bridge})
		k.fold(d, pod)
	}
	if k.afterSave != nil {
		k.afterSave()
	}
	if err := k.restore(ctx, lines); err != nil {
		return nil, err
	}
	return gone, nil
}

func (k *kernel) Prune(ctx context.Context, keep []string) error {
	d, unlock, err := k.lockSave(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	known := map[string]bool{}
	for _, p := range keep {
		known[p] = true
	}
	var stale []string
	for _, p := range k.ownPods(d) {
		if !known[p] {
			stale = append(stale, p)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	k.log.Info("dnat: removing rules of pods this node no longer has", "pods", stale)
	err = k.remove(ctx, stale...)
	for _, p := range stale {
		delete(k.base, p)
	}
	return err
}

func (k *kernel) Counters(ctx context.Context) (map[string]map[uint16]portfwd.Counters, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	d, err := k.save(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]map[uint16]portfwd.Counters{}
	for pod, ports := range k.base {
		out[pod] = map[uint16]portfwd.Counters{}
		for h, c := range ports {
			out[pod][h] = c
		}
	}
	for _, pod := range k.ownPods(d) {
		if out[pod] == nil {
			out[pod] = map[uint16]portfwd.Counters{}
		}
		for h, c := range k.podCounters(d, pod) {
			sum := out[pod][h]
			sum.Add(c)
			out[pod][h] = sum
		}
	}
	return out, nil
}

// fold adds the pod's current rule counters to base, before its rules are
// rewritten or removed. Callers hold k.mu.
func (k *kernel) fold(d map[string]*table, pod string) {
	for h, c := range k.podCounters(d, pod) {
		if k.base[pod] == nil {
			k.base[pod] = map[uint16]portfwd.Counters{}
		}
		sum := k.base[pod][h]
		sum.Add(c)
		k.base[pod][h] = sum
	}
}

// Cleanup removes every rule of the owner's pods and, when no node's pod
// rules remain, the node chains too. It is what `pinacle-node cleanup`
// runs; the daemon must be stopped.
func Cleanup(ctx context.Context, opts ...Option) error {
	k, err := newKernel(opts...)
	if err != nil {
		return err
	}
	d, unlock, err := k.lockSave(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if pods := k.ownPods(d); len(pods) > 0 {
		if err := k.remove(ctx, pods...); err != nil {
			return err
		}
		if d, err = k.save(ctx); err != nil {
			return err
		}
	}
	for _, tn := range []string{"nat", "filter"} {
		for _, r := range d[tn].rules {
			if (r.chain == k.node || r.chain == k.post) && strings.HasPrefix(r.comment, "pinacle:") {
				k.log.Info("dnat: node chains kept: another node on this host has pods", "rule", r.spec)
				return nil
			}
		}
	}
	lines := map[string][]string{}
	for tn, chains := range map[string][]string{"nat": {k.node, k.post}, "filter": {k.node, k.guard}} {
		t := d[tn]
		for _, r := range t.rules {
			for _, c := range chains {
				if jumpsTo(r, c) && !contains(chains, r.chain) {
					lines[tn] = append(lines[tn], del(r))
				}
			}
		}
		for _, c := range chains {
			if t.chains[c] {
				lines[tn] = append(lines[tn], "-F "+c)
			}
		}
		for _, c := range chains {
			if t.chains[c] {
				lines[tn] = append(lines[tn], "-X "+c)
			}
		}
	}
	return k.restore(ctx, lines)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// hostLock serialises read-modify-write of the rules between processes:
// every node on a host shares the node chains, and two of them creating
// a chain at once would flush each other's jumps (declaring a chain in
// iptables-restore flushes it). iptables' own lock covers one exec only.
// Callers hold k.mu; the returned func unlocks.
func (k *kernel) hostLock(ctx context.Context) (func(), error) {
	p := filepath.Join(os.TempDir(), "pinacle-"+strings.ToLower(k.config.prefix)+".lock")
	if d := "/run"; dirExists(d) {
		p = filepath.Join(d, "pinacle-"+strings.ToLower(k.config.prefix)+".lock")
	}
	l, err := fileutil.LockFile(ctx, p, false)
	if err != nil {
		return nil, fmt.Errorf("dnat: %w", err)
	}
	return l.Unlock, nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func (k *kernel) save(ctx context.Context) (map[string]*table, error) {
	out, err := iptables.Save(ctx, "-c")
	if err != nil {
		return nil, fmt.Errorf("dnat: %w", err)
	}
	return parseDump(out), nil
}

// restore applies lines per table in one atomic iptables-restore.
func (k *kernel) restore(ctx context.Context, tables map[string][]string) error {
	if err := iptables.Restore(ctx, tables); err != nil {
		return fmt.Errorf("dnat: %w", err)
	}
	return nil
}

// routeDev returns the interface the host routes ip through: the pod's
// bridge.
func routeDev(ip netip.Addr) (string, error) {
	routes, err := netlink.RouteGet(net.IP(ip.AsSlice()))
	if err != nil || len(routes) == 0 {
		return "", fmt.Errorf("route to %s: %w", ip, errors.Join(err, errdefs.ErrNotFound))
	}
	l, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("route to %s: link %d: %w", ip, routes[0].LinkIndex, err)
	}
	if l.Attrs().Flags&net.FlagLoopback != 0 {
		return "", fmt.Errorf("route to %s: it is a local address, not a pod: %w", ip, errdefs.ErrInvalidArgument)
	}
	return l.Attrs().Name, nil
}

// setRouteLocalnet sets route_localnet on one interface (never "all", the
// kube-proxy CVE-2020-8558 mistake). An interface already gone is fine.
func setRouteLocalnet(dev string, on bool) error {
	if strings.ContainsAny(dev, "/") || dev == "" || dev == "." || dev == ".." {
		return fmt.Errorf("interface %q: %w", dev, errdefs.ErrInvalidArgument)
	}
	v := "0\n"
	if on {
		v = "1\n"
	}
	p := filepath.Join("/proc/sys/net/ipv4/conf", dev, "route_localnet")
	err := os.WriteFile(p, []byte(v), 0o644)
	if err != nil && !on && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("route_localnet on %s: %w", dev, err)
	}
	return nil
}
