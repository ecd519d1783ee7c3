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
	"golang.org/x/sys/unix"

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
	return &kernel{config: c, names: newNames(c.prefix, c.owner), base: map[string]map[uint16]portfwd.Counters{}}, nil
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

// remove takes the pod's rules out and cuts its flows. Callers hold k.mu.
func (k *kernel) remove(ctx context.Context, pods ...string) error {
	d, err := k.save(ctx)
	if err != nil {
		return err
	}
	lines := map[string][]string{}
	type gone struct {
		flows  []flow
		bridge string
	}
	var removed []gone
	for _, pod := range pods {
		k.removeLines(d, pod, lines)
		flows, bridge := k.podState(d, pod)
		removed = append(removed, gone{flows, bridge})
		k.fold(d, pod)
	}
	if err := k.restore(ctx, lines); err != nil {
		return err
	}
	var errs []error
	for _, g := range removed {
		// Flows the kernel is forwarding keep their NAT in conntrack
		// after the rules go, towards a backend that is going away.
		// Without their entries, the client's next packet is a new,
		// un-NATed flow to the host port, where the listener's socket
		// answers a stray segment with a reset: a prompt close.
		if err := cutFlows(g.flows); err != nil {
			errs = append(errs, err)
		}
		if g.bridge != "" {
			if err := setRouteLocalnet(g.bridge, false); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
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

// flowFilter matches the conntrack entries of DNAT'd flows to one host
// port and pod: original destination port the host port, replies from the
// pod, and an original destination other than the pod (which excludes the
// userspace forwarder's own connections to the pod).
type flowFilter []flow

func (ff flowFilter) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	if f.Forward.Protocol != unix.IPPROTO_TCP {
		return false
	}
	for _, x := range ff {
		ip := net.IP(x.target.AsSlice())
		if f.Forward.DstPort == x.hostPort && f.Reverse.SrcIP.Equal(ip) && !f.Forward.DstIP.Equal(ip) {
			return true
		}
	}
	return false
}

func cutFlows(flows []flow) error {
	if len(flows) == 0 {
		return nil
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, flowFilter(flows)); err != nil {
		return fmt.Errorf("dnat: delete conntrack entries: %w", err)
	}
	return nil
}
