package dnat_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/portfwd"
	"github.com/pinacle/pinacle-node/portfwd/dnat"
)

func userspace(ps portfwd.PortStats) portfwd.Counters {
	c := ps.Counters
	k := ps.Kernel
	c.ConnsTotal -= k.ConnsTotal
	c.ConnsRejected -= k.ConnsRejected
	c.BytesIn -= k.BytesIn
	c.BytesOut -= k.BytesOut
	return c
}

// TestKernelPath follows a pod through Running, NotRunning, Running again
// and Release, from the host's 127.0.0.1 and from a client in another
// namespace through a non-loopback host address.
func TestKernelPath(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { noChains(t) })
	tp := newTopo(t, 1)
	backend := serveWho(t, tp.podNS, tp.podIP.String()+":8080")
	k := newKernel(t, t.Name())
	f := newFwd(t, 41900, 41909, k)
	ctx := context.Background()
	a, err := f.Allocate(ctx, "kp", []portfwd.PortRequest{{Name: "web", PodPort: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, "kp", tp.podIP); err != nil {
		t.Fatal(err)
	}
	h := a[0].HostPort
	local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), h)
	remote := netip.AddrPortFrom(tp.cliHostIP, h)

	if v := sysctl(t, tp.podIf, "route_localnet"); v != "1" {
		t.Errorf("route_localnet on %s = %s, want 1 while the pod is running", tp.podIf, v)
	}
	// From 127.0.0.1: masqueraded to the bridge's address so that the
	// pod can answer.
	src, c1 := who(t, "", local)
	if src != tp.podHostIP.String() {
		t.Errorf("backend saw %s from 127.0.0.1, want the host's bridge address %s", src, tp.podHostIP)
	}
	// From another namespace: the backend sees the client itself, which
	// the userspace relay (it dials from the host) never shows.
	src, _ = who(t, tp.cliNS, remote)
	if src != tp.cliIP.String() {
		t.Errorf("backend saw %s from the client namespace, want the client %s (kernel DNAT)", src, tp.cliIP)
	}
	// Bytes: 1 MiB each way through the loopback connection.
	payload := strings.Repeat("p", 1<<20)
	c1.SetDeadline(time.Now().Add(20 * time.Second))
	go c1.Write([]byte(payload))
	if _, err := io.ReadFull(c1, make([]byte, len(payload))); err != nil {
		t.Fatalf("echo 1 MiB: %v", err)
	}
	c1.SetDeadline(time.Time{})
	ps := portStats(t, f, "kp")
	if ps.Kernel.ConnsTotal != 2 || ps.Kernel.BytesIn < 1<<20 || ps.Kernel.BytesOut < 1<<20 {
		t.Errorf("kernel counters %+v: want 2 connections and >= 1 MiB each way", ps.Kernel)
	}
	if u := userspace(ps); u.ConnsTotal != 0 || u.BytesIn != 0 {
		t.Errorf("userspace counters %+v: want nothing through userspace", u)
	}
	if ps.ConnsTotal != ps.Kernel.ConnsTotal {
		t.Errorf("total %+v does not include the kernel's %+v", ps.Counters, ps.Kernel)
	}

	// Not running: rules go, the open kernel flow is cut, and a new
	// connection gets a prompt close from the userspace listener.
	if err := f.SetState("kp", portfwd.NotRunning); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(iptablesSave(t), "--to-destination "+tp.podIP.String()) {
		t.Error("DNAT rules still present after SetState(NotRunning)")
	}
	expectClosed(t, c1)
	c3, err := dialFrom("", local)
	if err != nil {
		t.Fatalf("the listener must stay bound while not running: %v", err)
	}
	expectClosed(t, c3)
	c3.Close()
	ps = portStats(t, f, "kp")
	if u := userspace(ps); u.ConnsFailed != 1 || u.ConnsTotal != 1 {
		t.Errorf("userspace counters %+v: want the one connection, failed", u)
	}
	if ps.Kernel.ConnsTotal != 2 {
		t.Errorf("kernel connections %d after the rules went: want 2 (counters kept)", ps.Kernel.ConnsTotal)
	}

	// Running again: the kernel path is back.
	if err := f.SetState("kp", portfwd.Running); err != nil {
		t.Fatal(err)
	}
	if src, _ := who(t, tp.cliNS, remote); src != tp.cliIP.String() {
		t.Errorf("after Running again the backend saw %s, want %s (kernel DNAT)", src, tp.cliIP)
	}
	if ps := portStats(t, f, "kp"); ps.Kernel.ConnsTotal != 3 || userspace(ps).ConnsTotal != 1 {
		t.Errorf("after Running again: kernel %+v, userspace %+v: want 3 kernel connections, 1 userspace", ps.Kernel, userspace(ps))
	}
	if n := backend.get(); n != 3 {
		t.Errorf("backend accepted %d connections, want 3", n)
	}

	// Release: nothing of the pod is left.
	if err := f.Release(ctx, "kp"); err != nil {
		t.Fatal(err)
	}
	dump := iptablesSave(t)
	if strings.Contains(dump, tp.podIP.String()) || strings.Contains(dump, ":kp\"") {
		t.Errorf("pod rules left after Release:\n%s", dump)
	}
	if v := sysctl(t, tp.podIf, "route_localnet"); v != "0" {
		t.Errorf("route_localnet on %s = %s after Release, want 0", tp.podIf, v)
	}
	if _, err := dialFrom("", local); err == nil {
		t.Error("host port still open after Release")
	}
}

// TestPodCannotReachHostLoopback is the CVE-2020-8558 check: with
// route_localnet on its bridge, a pod that routes 127.0.0.1 to the host
// must still not reach the host's loopback services.
func TestPodCannotReachHostLoopback(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { noChains(t) })
	tp := newTopo(t, 2)
	serveWho(t, tp.podNS, tp.podIP.String()+":8080")
	hostSvc := serveWho(t, "", "127.0.0.1:41990")
	k := newKernel(t, t.Name())
	ctx := context.Background()
	if err := k.Apply(ctx, "guard", tp.podIP, []portfwd.Allocation{{PodID: "guard", PodPort: 8080, HostPort: 41991}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Release(ctx, "guard") })
	if v := sysctl(t, tp.podIf, "route_localnet"); v != "1" {
		t.Fatalf("route_localnet = %s, want 1 (else this test proves nothing)", v)
	}
	// The attacking pod (root in its netns) gives up its own 127.0.0.1,
	// routes it to the host and accepts answers from it. Without the
	// guard rule this connects (checked when the test was written).
	nsName := filepath.Base(tp.podNS)
	run(t, "ip", "-n", nsName, "addr", "del", "127.0.0.1/8", "dev", "lo")
	run(t, "ip", "-n", nsName, "route", "add", "127.0.0.1/32", "via", tp.podHostIP.String(), "dev", "eth0")
	run(t, "ip", "netns", "exec", nsName, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
	c, err := dialFrom(tp.podNS, netip.MustParseAddrPort("127.0.0.1:41990"))
	if err == nil {
		c.Close()
		t.Fatal("the pod reached a service on the host's 127.0.0.1")
	}
	if n := hostSvc.get(); n != 0 {
		t.Fatalf("host service accepted %d connections from the pod", n)
	}
	var dropped bool
	for l := range strings.Lines(run(t, "iptables-save", "-c", "-t", "filter")) {
		if strings.Contains(l, "-A "+chainPrefix+"-GUARD") && !strings.HasPrefix(l, "[0:") {
			dropped = true
		}
	}
	if !dropped {
		t.Errorf("the guard rule never matched (dial error: %v): something else blocked the pod", err)
	}
}

// TestConnLimit: past the cap, the kernel path resets new connections.
func TestConnLimit(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { noChains(t) })
	tp := newTopo(t, 3)
	serveWho(t, tp.podNS, tp.podIP.String()+":8080")
	k := newKernel(t, t.Name(), dnat.WithMaxConnsPerPort(2))
	f := newFwd(t, 41920, 41929, k, portfwd.WithMaxConnsPerPort(2))
	ctx := context.Background()
	a, err := f.Allocate(ctx, "cap", []portfwd.PortRequest{{PodPort: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, "cap", tp.podIP); err != nil {
		t.Fatal(err)
	}
	remote := netip.AddrPortFrom(tp.cliHostIP, a[0].HostPort)
	for range 2 {
		if src, _ := who(t, tp.cliNS, remote); src != tp.cliIP.String() {
			t.Fatalf("backend saw %s, want %s", src, tp.cliIP)
		}
	}
	c, err := dialFrom(tp.cliNS, remote)
	if err == nil {
		c.Close()
		t.Fatal("a third connection was accepted past the cap of 2")
	}
	var ne *net.OpError
	if !errorsAs(err, &ne) || ne.Timeout() {
		t.Fatalf("third connection: %v, want a prompt refusal", err)
	}
	if ps := portStats(t, f, "cap"); ps.Kernel.ConnsRejected != 1 || ps.Kernel.ConnsTotal != 3 {
		t.Errorf("kernel counters %+v: want 3 connections, 1 rejected", ps.Kernel)
	}
}

// TestAdoptAndPrune: rules outlive the forwarder; a new one keeps a known
// pod's until its first transition and removes an unknown pod's at once,
// and leaves another node's pods alone.
func TestAdoptAndPrune(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { noChains(t) })
	tp := newTopo(t, 4)
	serveWho(t, tp.podNS, tp.podIP.String()+":8080")
	ctx := context.Background()
	k1 := newKernel(t, "node-a")
	other := newKernel(t, "node-b")
	allocs := map[string]portfwd.Allocation{
		"kept":  {PodID: "kept", PodPort: 8080, HostPort: 41940},
		"stale": {PodID: "stale", PodPort: 8080, HostPort: 41941},
	}
	for id, a := range allocs {
		if err := k1.Apply(ctx, id, tp.podIP, []portfwd.Allocation{a}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Apply(ctx, "kept", tp.podIP, []portfwd.Allocation{{PodID: "kept", PodPort: 8080, HostPort: 41942}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Release(ctx, "kept") })

	// A "restarted daemon" of node-a whose store knows only "kept".
	store := &storedAllocs{allocs: []portfwd.Allocation{allocs["kept"]}}
	k2 := newKernel(t, "node-a")
	f := newFwd(t, 41940, 41949, k2, portfwd.WithStore(store))
	for port, want := range map[uint16]bool{41940: true, 41941: false, 41942: true} {
		src, c := "", net.Conn(nil)
		c, err := dialFrom(tp.cliNS, netip.AddrPortFrom(tp.cliHostIP, port))
		if err == nil {
			c.Close()
			src = "connected"
		}
		if got := err == nil; got != want {
			t.Errorf("port %d after restart: connected=%v (%v %s), want %v", port, got, err, src, want)
		}
	}
	// The known pod is not running after all: its rules go.
	if err := f.SetState("kept", portfwd.NotRunning); err != nil {
		t.Fatal(err)
	}
	if c, err := dialFrom(tp.cliNS, netip.AddrPortFrom(tp.cliHostIP, 41940)); err == nil {
		c.Close()
		t.Error("port 41940 still forwarded after SetState(NotRunning) of an adopted pod")
	}
	if c, err := dialFrom(tp.cliNS, netip.AddrPortFrom(tp.cliHostIP, 41942)); err != nil {
		t.Errorf("the other node's pod lost its port: %v", err)
	} else {
		c.Close()
	}
}

// TestHibernateWake: a hibernated pod has no rules, so a connection
// reaches the listener, which wakes the pod; once it is Running again the
// kernel path is back.
func TestHibernateWake(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { noChains(t) })
	tp := newTopo(t, 5)
	serveWho(t, tp.podNS, tp.podIP.String()+":8080")
	k := newKernel(t, t.Name())
	woken := &atomicCount{}
	f := newFwd(t, 41950, 41959, k, portfwd.WithWaker(func(ctx context.Context, pod string) (netip.Addr, error) {
		woken.add()
		return tp.podIP, nil
	}))
	ctx := context.Background()
	a, err := f.Allocate(ctx, "hib", []portfwd.PortRequest{{PodPort: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, "hib", tp.podIP); err != nil {
		t.Fatal(err)
	}
	remote := netip.AddrPortFrom(tp.cliHostIP, a[0].HostPort)
	if err := f.SetState("hib", portfwd.Hibernated); err != nil {
		t.Fatal(err)
	}
	// Through the listener: the wake, then the relay (which dials from the
	// host, so the backend sees the host's address).
	if src, _ := who(t, tp.cliNS, remote); src != tp.podHostIP.String() {
		t.Errorf("first connection after hibernation: backend saw %s, want the relay's %s", src, tp.podHostIP)
	}
	if woken.get() != 1 {
		t.Fatalf("waker called %d times, want 1", woken.get())
	}
	// The wake put the rules back (asynchronously, after releasing the
	// waiting connections).
	deadline := time.Now().Add(10 * time.Second)
	for {
		src, c := who(t, tp.cliNS, remote)
		c.Close()
		if src == tp.cliIP.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the wake the backend still sees %s, want the client %s (kernel path)", src, tp.cliIP)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSetStateIfKeepsFlows: a SetStateIf told no leaves the pod's kernel
// flows open and its rules back; a connection that begins while the rules
// go (after the counters were read) calls it off even when proceed says
// yes, and that connection goes on; told yes, the flows are cut.
func TestSetStateIfKeepsFlows(t *testing.T) {
	requireRoot(t)
	t.Cleanup(func() { noChains(t) })
	tp := newTopo(t, 6)
	serveWho(t, tp.podNS, tp.podIP.String()+":8080")
	k := newKernel(t, t.Name())
	f := newFwd(t, 41960, 41969, k)
	ctx := context.Background()
	a, err := f.Allocate(ctx, "sif", []portfwd.PortRequest{{PodPort: 8080}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx, "sif", tp.podIP); err != nil {
		t.Fatal(err)
	}
	remote := netip.AddrPortFrom(tp.cliHostIP, a[0].HostPort)
	src, c1 := who(t, tp.cliNS, remote)
	if src != tp.cliIP.String() {
		t.Fatalf("backend saw %s, want the client %s (kernel path)", src, tp.cliIP)
	}
	echo := func(c net.Conn, msg string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		defer c.SetDeadline(time.Time{})
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("write: %v", err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, buf, err)
		}
	}
	no := func(portfwd.PodStats) bool { return false }
	yes := func(portfwd.PodStats) bool { return true }

	if err := f.SetStateIf("sif", portfwd.Hibernated, no); !errors.Is(err, portfwd.ErrActive) {
		t.Fatalf("SetStateIf told no: %v, want ErrActive", err)
	}
	echo(c1, "still there")
	if src, _ := who(t, tp.cliNS, remote); src != tp.cliIP.String() {
		t.Errorf("after a called-off SetStateIf the backend saw %s, want %s (rules back)", src, tp.cliIP)
	}

	var late net.Conn
	var lateErr error
	dnat.SetAfterSave(k, func() {
		dnat.SetAfterSave(k, nil)
		late, lateErr = dialFrom(tp.cliNS, remote) // not t.Fatal: locks are held here
	})
	err = f.SetStateIf("sif", portfwd.Hibernated, yes)
	if lateErr != nil {
		t.Fatalf("dial as the rules went: %v", lateErr)
	}
	t.Cleanup(func() { late.Close() })
	if !errors.Is(err, portfwd.ErrActive) {
		t.Fatalf("SetStateIf with a connection begun as the rules went: %v, want ErrActive", err)
	}
	late.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(late)
	if line, err := br.ReadString('\n'); err != nil || strings.TrimSpace(line) != tp.cliIP.String() {
		t.Fatalf("greeting on the connection begun as the rules went: %q, %v; want the client %s (kernel path)", line, err, tp.cliIP)
	}
	late.SetDeadline(time.Time{})
	if br.Buffered() != 0 {
		t.Fatalf("unexpected bytes after the greeting")
	}
	echo(late, "served")
	echo(c1, "and this one")

	if err := f.SetStateIf("sif", portfwd.Hibernated, yes); err != nil {
		t.Fatalf("SetStateIf told yes: %v", err)
	}
	expectClosed(t, c1)
	expectClosed(t, late)
	if strings.Contains(iptablesSave(t), "--to-destination "+tp.podIP.String()) {
		t.Error("DNAT rules still present after SetStateIf(Hibernated)")
	}
	if v := sysctl(t, tp.podIf, "route_localnet"); v != "0" {
		t.Errorf("route_localnet on %s = %s after the flows were cut, want 0", tp.podIf, v)
	}
	// The counters are kept across the removals (the connection begun
	// between the save and the restore is counted by nothing but the
	// conntrack look, as any rewrite of the rules can lose it).
	if ps := portStats(t, f, "sif"); ps.Kernel.ConnsTotal < 2 {
		t.Errorf("kernel connections %d, want at least 2 (counters kept)", ps.Kernel.ConnsTotal)
	}
}
