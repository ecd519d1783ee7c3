package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// createNamedNS creates a persistent network namespace at dir/name the way
// `ip netns add` does: unshare on a locked thread, bind-mount the thread's
// ns file. dir is made a shared mount so the bind mounts propagate.
func createNamedNS(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return "", fmt.Errorf("make %s rshared: %w", dir, err)
		}
		// Not a mount point yet: bind it onto itself first (what iproute2 does).
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("bind %s onto itself: %w", dir, err)
		}
		if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
			return "", fmt.Errorf("make %s rshared: %w", dir, err)
		}
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("netns %s: %w", path, errdefs.ErrAlreadyExists)
		}
		return "", err
	}
	f.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Never unlocked: the thread has changed namespace, so Go must
		// throw it away when this goroutine ends instead of reusing it.
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("unshare netns: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err = unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			err = fmt.Errorf("bind-mount netns to %s: %w", path, err)
		}
	}()
	wg.Wait()
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// removeNamedNS unmounts and removes a named netns; gone is success. The
// file is removed only after the unmount, never while it may be a mount.
func removeNamedNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// nsAlive reports whether path is a mounted network namespace.
func nsAlive(path string) bool { return ns.IsNSorErr(path) == nil }

// prepareNS brings loopback up and turns IPv6 off inside the namespace:
// pods are IPv4-only, and an IPv6 link-local address would be a way to
// reach the host around the IPv4 rules.
func prepareNS(path string) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error {
		for _, k := range []string{"all", "default", "lo"} {
			// /proc/sys/net is the opener's netns, i.e. this locked thread's.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("disable ipv6 (%s): %w", k, err)
			}
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("loopback: %w", err)
		}
		return netlink.LinkSetUp(lo)
	})
}

// disableIPv6 turns IPv6 off on a host-side link (the pod's bridge).
func disableIPv6(link string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+link+"/disable_ipv6", []byte("1"), 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no IPv6 in this kernel: nothing to leak
	}
	return err
}

// restoreAddr re-adds the pod's address and default route to ifname inside
// the namespace. runsc strips them when it creates or restores a sandbox;
// they must be back before CNI DEL (or the bridge plugin cannot find the
// address and leaks its masquerade chain) and before runsc restore.
func restoreAddr(path, ifname string, addr netip.Prefix, gw netip.Addr) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("link %s: %w", ifname, err)
		}
		a := &netlink.Addr{IPNet: prefixToIPNet(addr)}
		if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to %s: %w", addr, ifname, err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		if gw.IsValid() {
			r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}
			if err := netlink.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("default route via %s: %w", gw, err)
			}
		}
		return nil
	})
}
