package dnat_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/portfwd/dnat"
)

// Tests use the subnet 10.251.0.0/16, host ports 41900-41999, chains
// PINACLE-T41*, interfaces pftp<n> (pod side, matched by pftp+) and
// pftc<n> (client side), and netns pft-<n>-pod / pft-<n>-cli. They run one
// after another: they share the node chains and check them at the end.

const (
	chainPrefix = "PINACLE-T41"
	podIfaces   = "pftp+"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (network namespaces, iptables)")
	}
	for _, bin := range []string{"ip", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Missing(t, "%s not installed", bin)
		}
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(string(b)) != "1" {
		testenv.Missing(t, "net.ipv4.ip_forward is off; the kernel path forwards to pods like the node does")
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// topo is a pod netns and a client netns, each behind a veth to the host.
type topo struct {
	n                int
	podNS, cliNS     string // paths
	podIf, cliIf     string // host-side interfaces
	podIP, podHostIP netip.Addr
	cliIP, cliHostIP netip.Addr
}

func newTopo(t testing.TB, n int) *topo {
	t.Helper()
	tp := &topo{n: n,
		podIf: fmt.Sprintf("pftp%d", n), cliIf: fmt.Sprintf("pftc%d", n),
		podIP: netip.MustParseAddr(fmt.Sprintf("10.251.%d.2", n)), podHostIP: netip.MustParseAddr(fmt.Sprintf("10.251.%d.1", n)),
		cliIP: netip.MustParseAddr(fmt.Sprintf("10.251.%d.2", 100+n)), cliHostIP: netip.MustParseAddr(fmt.Sprintf("10.251.%d.1", 100+n)),
	}
	for _, side := range []struct {
		name, hostIf string
		ip, hostIP   netip.Addr
		path         *string
	}{{"pod", tp.podIf, tp.podIP, tp.podHostIP, &tp.podNS}, {"cli", tp.cliIf, tp.cliIP, tp.cliHostIP, &tp.cliNS}} {
		nsName := fmt.Sprintf("pft-%d-%s", n, side.name)
		exec.Command("ip", "netns", "del", nsName).Run() // a previous run's leftover
		run(t, "ip", "netns", "add", nsName)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", nsName).Run() })
		*side.path = "/run/netns/" + nsName
		run(t, "ip", "link", "add", side.hostIf, "type", "veth", "peer", "name", "eth0", "netns", nsName)
		run(t, "ip", "addr", "add", side.hostIP.String()+"/24", "dev", side.hostIf)
		run(t, "ip", "link", "set", side.hostIf, "up")
		run(t, "ip", "-n", nsName, "addr", "add", side.ip.String()+"/24", "dev", "eth0")
		run(t, "ip", "-n", nsName, "link", "set", "eth0", "up")
		run(t, "ip", "-n", nsName, "link", "set", "lo", "up")
		run(t, "ip", "-n", nsName, "route", "add", "default", "via", side.hostIP.String())
	}
	return tp
}

// serveWho listens on addr inside the namespace at nsPath ("" = host).
// Each connection gets the peer's IP and a newline, then an echo.
func serveWho(t testing.TB, nsPath, addr string) *atomicCount {
	t.Helper()
	var l net.Listener
	listen := func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	}
	var err error
	if nsPath == "" {
		err = listen()
	} else {
		err = ns.WithNetNSPath(nsPath, func(ns.NetNS) error { return listen() })
	}
	if err != nil {
		t.Fatalf("listen %s in %q: %v", addr, nsPath, err)
	}
	accepted := &atomicCount{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.add()
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
				fmt.Fprintf(c, "%s\n", ap.Addr())
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return accepted
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (a *atomicCount) add() { a.mu.Lock(); a.n++; a.mu.Unlock() }
func (a *atomicCount) get() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// dialFrom connects to addr from the namespace at nsPath ("" = host).
func dialFrom(nsPath string, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	do := func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr.String(), 5*time.Second)
		return err
	}
	if nsPath == "" {
		return c, do()
	}
	return c, ns.WithNetNSPath(nsPath, func(ns.NetNS) error { return do() })
}

// who connects and returns the address the backend saw, keeping the
// connection open until the test ends.
func who(t testing.TB, nsPath string, addr netip.AddrPort) (string, net.Conn) {
	t.Helper()
	c, err := dialFrom(nsPath, addr)
	if err != nil {
		t.Fatalf("dial %s from %q: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting via %s: %v", addr, err)
	}
	return strings.TrimSpace(line), c
}

// expectClosed asserts the peer closes c (EOF or reset) rather than leave
// it hanging; the deadline only turns a hang into a failure.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("x")) // a flow the kernel forgot answers this with a reset
	_, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection was not closed: %v", err)
	}
}

func iptablesSave(t testing.TB) string {
	t.Helper()
	return run(t, "iptables-save")
}

func newKernel(t testing.TB, owner string, opts ...dnat.Option) portfwd.KernelPath {
	t.Helper()
	base := []dnat.Option{dnat.WithChainPrefix(chainPrefix), dnat.WithOwner(owner), dnat.WithPodInterfaces(podIfaces)}
	k, err := dnat.New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("dnat.New: %v", err)
	}
	t.Cleanup(func() { cleanup(t, owner) })
	return k
}

// cleanup runs what `pinacle-node cleanup` runs and checks the owner's
// rules are gone; the last owner's takes the node chains too.
func cleanup(t testing.TB, owner string) {
	t.Helper()
	if err := dnat.Cleanup(context.Background(), dnat.WithChainPrefix(chainPrefix), dnat.WithOwner(owner), dnat.WithPodInterfaces(podIfaces)); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
}

// noChains asserts iptables has no chain or rule with chainPrefix.
func noChains(t testing.TB) {
	t.Helper()
	for l := range strings.Lines(iptablesSave(t)) {
		if strings.Contains(l, chainPrefix) {
			t.Errorf("left in iptables: %s", strings.TrimSpace(l))
		}
	}
}

func newFwd(t testing.TB, lo, hi uint16, k portfwd.KernelPath, opts ...portfwd.Option) portfwd.Forwarder {
	t.Helper()
	opts = append([]portfwd.Option{portfwd.WithListenAddr(netip.IPv4Unspecified()), portfwd.WithPortRange(lo, hi),
		portfwd.WithKernelPath(k), portfwd.WithDrainTimeout(time.Second)}, opts...)
	f, err := portfwd.New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("portfwd.New: %v", err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func portStats(t testing.TB, f portfwd.Forwarder, pod string) portfwd.PortStats {
	t.Helper()
	for _, p := range f.Stats().Pods {
		if p.PodID == pod && len(p.Ports) == 1 {
			return p.Ports[0]
		}
	}
	t.Fatalf("no stats for pod %s", pod)
	return portfwd.PortStats{}
}

func sysctl(t testing.TB, dev, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + dev + "/" + key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// storedAllocs is an AllocationStore holding what a restarted daemon
// would find in state.db; writes go nowhere.
type storedAllocs struct{ allocs []portfwd.Allocation }

func (s *storedAllocs) Load(context.Context) ([]portfwd.Allocation, error) { return s.allocs, nil }
func (s *storedAllocs) Save(context.Context, string, []portfwd.Allocation) error {
	return nil
}
func (s *storedAllocs) Delete(context.Context, string) error { return nil }
