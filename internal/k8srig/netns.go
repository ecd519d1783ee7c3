package k8srig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/pinacle/pinacle-node/internal/leakcheck"
)

// NetnsPrefix names every network namespace and veth the rig makes on
// the host: k8srig-N, k8srigNh (host side), k8srigNn (node side).
const NetnsPrefix = "k8srig"

// nodeNet is one node's network namespace and its veth to the host:
// HostIP (10.231.N.1/24) on the host side, Addr (10.231.N.2/24) inside,
// the namespace's default route through HostIP. The node's daemon and vk
// run in it (entered with setns only: they share the host's mount
// namespace, which the pods' rootfs and netns mounts must reach), so its
// bridges, iptables chains and listening addresses are its own.
type nodeNet struct {
	Name   string // k8srig-N, under /run/netns
	HostIf string
	NodeIf string
	HostIP string
	Addr   string
	// before is what the namespace held of the node's kinds once made
	// (nothing, normally): the node's cleanup must bring it back to that.
	before leakcheck.Snapshot
}

func newNodeNet(i int) *nodeNet {
	return &nodeNet{Name: fmt.Sprintf("%s-%d", NetnsPrefix, i), HostIf: fmt.Sprintf("%s%dh", NetnsPrefix, i),
		NodeIf: fmt.Sprintf("%s%dn", NetnsPrefix, i), HostIP: fmt.Sprintf("10.231.%d.1", i), Addr: fmt.Sprintf("10.231.%d.2", i)}
}

// Path is the namespace's file.
func (nn *nodeNet) Path() string { return filepath.Join("/run/netns", nn.Name) }

// setup makes the namespace and the veth, removing first what a rig
// killed earlier left under the same names.
func (nn *nodeNet) setup(ctx context.Context) error {
	if err := nn.remove(ctx); err != nil {
		return err
	}
	steps := [][]string{
		{"netns", "add", nn.Name},
		{"link", "add", nn.HostIf, "type", "veth", "peer", "name", nn.NodeIf, "netns", nn.Name},
		{"addr", "add", nn.HostIP + "/24", "dev", nn.HostIf},
		{"link", "set", nn.HostIf, "up"},
		{"-n", nn.Name, "link", "set", "lo", "up"},
		{"-n", nn.Name, "addr", "add", nn.Addr + "/24", "dev", nn.NodeIf},
		{"-n", nn.Name, "link", "set", nn.NodeIf, "up"},
		{"-n", nn.Name, "route", "add", "default", "via", nn.HostIP},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return fmt.Errorf("k8s rig: %s: %w", nn.Name, err)
		}
	}
	if err := waitAddr(ctx, nn.HostIP); err != nil {
		return fmt.Errorf("k8s rig: %s: %w", nn.Name, err)
	}
	var err error
	nn.before, err = nn.take(ctx)
	return err
}

// waitAddr waits until addr can be bound on the host: a fresh address is
// tentative for a moment.
func waitAddr(ctx context.Context, addr string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err == nil {
			return l.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("address %s not usable: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// remove deletes the namespace (which takes the veth pair with it) and
// the host side of the veth should it outlive it; gone is success.
func (nn *nodeNet) remove(ctx context.Context) error {
	var errs []error
	if _, err := os.Stat(nn.Path()); err == nil {
		errs = append(errs, ip(ctx, "netns", "del", nn.Name))
	}
	if _, err := net.InterfaceByName(nn.HostIf); err == nil {
		errs = append(errs, ip(ctx, "link", "del", nn.HostIf))
	}
	return errors.Join(errs...)
}

// netKinds are the leak check's kinds that are a network namespace's
// own; the others (mounts, cgroups, named netns files, loop devices) are
// the host's and the host-wide check covers them.
var netKinds = []string{"link", "addr", "route", "iptables", "qdisc"}

// nodeFilter keeps, inside a node's namespace, what a pinacle node makes
// there: its bridges (pn...), CNI's veths and chains, its PINACLE chains,
// ifb devices (bwp...) and the pods' subnets (10.8N.x). Not the rig's
// veth: its IPv6 link-local route comes when the kernel gets to it, not
// by the node; nor iptables' built-in chains, made by the first rule.
var nodeFilter = []string{"pn", "veth", "CNI", "cni", "PINACLE", "pinacle", "bwp", "10.8"}

// take records what the namespace holds.
func (nn *nodeNet) take(ctx context.Context) (leakcheck.Snapshot, error) {
	var s leakcheck.Snapshot
	err := ns.WithNetNSPath(nn.Path(), func(ns.NetNS) error {
		// Commands started on this locked thread run in the namespace.
		s = leakcheck.Probe{Filter: nodeFilter}.Take(ctx)
		return s.Err()
	})
	for k := range s {
		if !containsKind(k) {
			delete(s, k)
		}
	}
	return s, err
}

func containsKind(k string) bool {
	for _, n := range netKinds {
		if n == k {
			return true
		}
	}
	return false
}

// leaks polls until the namespace holds nothing it did not hold when
// made, or timeout passes; it returns what is left.
func (nn *nodeNet) leaks(ctx context.Context, timeout time.Duration) error {
	if nn.before == nil {
		return nil // never made: nothing to compare
	}
	deadline := time.Now().Add(timeout)
	for {
		now, err := nn.take(ctx)
		if err != nil {
			return fmt.Errorf("k8s rig: %s: leak check: %w", nn.Name, err)
		}
		d := leakcheck.Diff(nn.before, now)
		if len(d) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("k8s rig: %s: leaked in the node's network namespace:\n  %s", nn.Name, strings.Join(d, "\n  "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// command runs argv in the namespace: nsenter enters its network
// namespace only and execs argv (same PID), unlike `ip netns exec`,
// which also unshares the mount namespace and so would hide the node's
// mounts (pods' rootfs, netns files) from the host and from the node's
// next start.
func (nn *nodeNet) command(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + nn.Path(), "--"}, argv...)
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
