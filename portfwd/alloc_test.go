package portfwd_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/portfwd"
)

func TestOptionsValidate(t *testing.T) {
	for name, opt := range map[string]portfwd.Option{
		"range min 0":      portfwd.WithPortRange(0, 10),
		"range inverted":   portfwd.WithPortRange(5000, 4000),
		"invalid addr":     portfwd.WithListenAddr(netip.Addr{}),
		"negative idle":    portfwd.WithIdleTimeout(-1),
		"zero max conns":   portfwd.WithMaxConnsPerPort(0),
		"nil store":        portfwd.WithStore(nil),
		"nil logger":       portfwd.WithLogger(nil),
		"zero dial":        portfwd.WithDialTimeout(0),
		"negative drain":   portfwd.WithDrainTimeout(-1),
		"nil waker":        portfwd.WithWaker(nil),
		"zero wake window": portfwd.WithWakeTimeout(0),
	} {
		if _, err := portfwd.New(context.Background(), opt); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: New = %v, want invalid argument", name, err)
		}
	}
}

func TestAllocateValidates(t *testing.T) {
	t.Parallel()
	f := newFwd(t, 26340, 26359)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		pod  string
		reqs []portfwd.PortRequest
	}{
		"bad pod id":    {"../x", []portfwd.PortRequest{{PodPort: 80}}},
		"zero pod port": {"p", []portfwd.PortRequest{{Name: "web"}}},
		"dup name":      {"p", []portfwd.PortRequest{{Name: "web", PodPort: 80}, {Name: "web", PodPort: 81}}},
		"dup pod port":  {"p", []portfwd.PortRequest{{PodPort: 80}, {PodPort: 80}}},
		"dup host port": {"p", []portfwd.PortRequest{{PodPort: 80, HostPort: 26340}, {PodPort: 81, HostPort: 26340}}},
		"bad port name": {"p", []portfwd.PortRequest{{Name: "Web Port", PodPort: 80}}},
	} {
		if _, err := f.Allocate(ctx, tc.pod, tc.reqs); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: Allocate = %v, want invalid argument", name, err)
		}
	}
}

func TestBusyHostPortSkipped(t *testing.T) {
	t.Parallel()
	// Another process (this test) holds the first pool port.
	busy, err := net.Listen("tcp", "127.0.0.1:26080")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	f := newFwd(t, 26080, 26082)
	ctx := context.Background()
	a, err := f.Allocate(ctx, "p", []portfwd.PortRequest{{PodPort: 80}})
	if err != nil {
		t.Fatal(err)
	}
	// Not asserting 26081 exactly: any process's outgoing connection may
	// hold a pool port as its ephemeral port (the pool overlaps
	// ip_local_port_range unless ip_local_reserved_ports covers it).
	if p := a[0].HostPort; p == 26080 || p > 26082 {
		t.Fatalf("host port %d, want 26081-26082 (26080 is busy)", p)
	}
	// An explicit request for the busy port fails naming port and holder.
	_, err = f.Allocate(ctx, "q", []portfwd.PortRequest{{PodPort: 80, HostPort: 26080}})
	if !errdefs.IsConflict(err) {
		t.Fatalf("explicit busy port: %v, want conflict", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "26080") || !strings.Contains(msg, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("error %q should name port 26080 and pid %d", msg, os.Getpid())
	}
	// An explicit request for another pod's port names that pod.
	_, err = f.Allocate(ctx, "q", []portfwd.PortRequest{{PodPort: 80, HostPort: a[0].HostPort}})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p") {
		t.Fatalf("explicit taken port: %v, want conflict naming pod p", err)
	}
	// An explicit free port is honoured, even outside the pool.
	b, err := f.Allocate(ctx, "q", []portfwd.PortRequest{{PodPort: 80, HostPort: 26083}})
	if err != nil || b[0].HostPort != 26083 || !b[0].Explicit {
		t.Fatalf("explicit free port: %+v, %v", b, err)
	}
}

func TestPoolExhausted(t *testing.T) {
	t.Parallel()
	// Every pool port is held by another process (this test): busy ports
	// are skipped, so there is none to give.
	for _, p := range []string{"127.0.0.1:26090", "127.0.0.1:26091"} {
		ln, err := net.Listen("tcp", p)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
	}
	f := newFwd(t, 26090, 26091)
	if _, err := f.Allocate(context.Background(), "p", []portfwd.PortRequest{{PodPort: 80}}); !errors.Is(err, errdefs.ErrResourceLimit) {
		t.Fatalf("Allocate = %v, want resource limit", err)
	}
}

func TestAllocationsStable(t *testing.T) {
	t.Parallel()
	f := newFwd(t, 26360, 26379)
	ctx := context.Background()
	backend := serve(t, echo)
	a, err := f.Allocate(ctx, "st", []portfwd.PortRequest{{Name: "web", PodPort: backend.Port()}, {PodPort: 22}})
	if err != nil {
		t.Fatal(err)
	}
	// Same keys in another order plus a new one: the old keep their ports.
	b, err := f.Allocate(ctx, "st", []portfwd.PortRequest{{PodPort: 22}, {Name: "new", PodPort: 9000}, {Name: "web", PodPort: backend.Port()}})
	if err != nil {
		t.Fatal(err)
	}
	if b[0].HostPort != a[1].HostPort || b[2].HostPort != a[0].HostPort {
		t.Fatalf("ports moved: %+v -> %+v", a, b)
	}
	// Start/stop cycles keep them too.
	for range 2 {
		if err := f.Start(ctx, "st", loopback); err != nil {
			t.Fatal(err)
		}
		c := dial(t, b[2].HostPort)
		roundTrip(t, c, "x")
		c.Close() // else Stop waits the whole drain timeout for it
		// Idempotent while listening; a changed set is refused.
		if c, err := f.Allocate(ctx, "st", []portfwd.PortRequest{{PodPort: 22}, {Name: "new", PodPort: 9000}, {Name: "web", PodPort: backend.Port()}}); err != nil || !reflect.DeepEqual(c, b) {
			t.Fatalf("re-Allocate while listening: %+v, %v", c, err)
		}
		if _, err := f.Allocate(ctx, "st", []portfwd.PortRequest{{PodPort: 22}}); !errdefs.IsConflict(err) {
			t.Fatalf("changing while listening: %v, want conflict", err)
		}
		if err := f.Stop(ctx, "st"); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Allocations("st"); !reflect.DeepEqual(got, b) {
		t.Fatalf("Allocations = %+v, want %+v", got, b)
	}
	// Dropping a key frees its port for others.
	if _, err := f.Allocate(ctx, "st", []portfwd.PortRequest{{Name: "web", PodPort: backend.Port()}}); err != nil {
		t.Fatal(err)
	}
	if c, err := f.Allocate(ctx, "other", []portfwd.PortRequest{{PodPort: 1, HostPort: b[0].HostPort}}); err != nil || c[0].HostPort != b[0].HostPort {
		t.Fatalf("dropped port not free: %+v, %v", c, err)
	}
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	ctx := context.Background()
	f1, err := portfwd.New(ctx, portfwd.WithListenAddr(loopback), portfwd.WithPortRange(26100, 26119), portfwd.WithStore(store))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f1.Allocate(ctx, "a", []portfwd.PortRequest{{Name: "web", PodPort: 3000}, {Name: "ssh", PodPort: 22}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f1.Allocate(ctx, "b", []portfwd.PortRequest{{Name: "web", PodPort: 3000}})
	if err != nil {
		t.Fatal(err)
	}
	want := f1.Allocations("")
	if err := f1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A "node restart": a new forwarder on the same store.
	f2 := newFwd(t, 26100, 26119, portfwd.WithStore(store))
	if got := f2.Allocations(""); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart %+v, want %+v", got, want)
	}
	a2, err := f2.Allocate(ctx, "a", []portfwd.PortRequest{{Name: "web", PodPort: 3000}, {Name: "ssh", PodPort: 22}})
	if err != nil || !reflect.DeepEqual(a2, a) {
		t.Fatalf("re-Allocate after restart: %+v, %v; want %+v", a2, err, a)
	}
	// Release frees b's port and removes it from the file.
	if err := f2.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := f2.Release(ctx, "b"); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	stored, err := store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stored {
		if s.PodID == "b" {
			t.Fatalf("released pod still stored: %+v", stored)
		}
	}
	if len(stored) != 2 {
		t.Fatalf("stored %+v, want a's two", stored)
	}
	c, err := f2.Allocate(ctx, "c", []portfwd.PortRequest{{PodPort: 1, HostPort: b[0].HostPort}})
	if err != nil || c[0].HostPort != b[0].HostPort {
		t.Fatalf("released port not reusable: %+v, %v", c, err)
	}
}

func TestReleaseFreesPort(t *testing.T) {
	t.Parallel()
	f := newFwd(t, 26120, 26139)
	ctx := context.Background()
	port := startOne(t, f, "one", serve(t, echo))
	want := []portfwd.PortRequest{{PodPort: 80, HostPort: port}}
	if _, err := f.Allocate(ctx, "two", want); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod one") {
		t.Fatalf("taken port: %v, want conflict naming pod one", err)
	}
	if err := f.Release(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", netip.AddrPortFrom(loopback, port).String()); err == nil {
		t.Fatal("released port still listening")
	}
	a, err := f.Allocate(ctx, "two", want)
	if err != nil || a[0].HostPort != port {
		t.Fatalf("after release: %+v, %v", a, err)
	}
	if len(f.Allocations("one")) != 0 || len(f.Stats().Pods) != 1 {
		t.Fatal("released pod still has allocations or stats")
	}
}

// Two pods on one host port in the store: New refuses rather than guess.
func TestNewRefusesConflictingStore(t *testing.T) {
	s := newMemStore(
		portfwd.Allocation{PodID: "a", PodPort: 1, HostPort: 26500},
		portfwd.Allocation{PodID: "b", PodPort: 1, HostPort: 26500})
	if _, err := portfwd.New(context.Background(), portfwd.WithStore(s)); !errdefs.IsConflict(err) {
		t.Fatalf("New = %v, want conflict", err)
	}
}

// A public port listens on the public address, every other port on the
// listen address only.
func TestPublicListenAddr(t *testing.T) {
	public := netip.MustParseAddr("127.0.0.2")
	f := newFwd(t, 26380, 26389, portfwd.WithPublicListenAddr(public))
	backend := serve(t, echo)
	ctx := context.Background()
	allocs, err := f.Allocate(ctx, "pub", []portfwd.PortRequest{{Name: "web", PodPort: backend.Port()}, {Name: "api", PodPort: backend.Port(), Public: true}})
	if err != nil {
		t.Fatal(err)
	}
	if allocs[0].Public || !allocs[1].Public {
		t.Fatalf("allocations %+v", allocs)
	}
	if err := f.Start(ctx, "pub", backend.Addr()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr netip.Addr
		port uint16
		ok   bool
	}{
		{loopback, allocs[0].HostPort, true}, {public, allocs[0].HostPort, false},
		{public, allocs[1].HostPort, true}, {loopback, allocs[1].HostPort, false},
	} {
		c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(tc.addr, tc.port)))
		if (err == nil) != tc.ok {
			t.Errorf("dial %s:%d: err %v, want reachable %v", tc.addr, tc.port, err, tc.ok)
		}
		if err == nil {
			if got := roundTrip(t, c, "hi"); got != "hi" {
				t.Errorf("echo %q", got)
			}
			c.Close()
		}
	}
	// Changing public while listening is a change of ports.
	if _, err := f.Allocate(ctx, "pub", []portfwd.PortRequest{{Name: "web", PodPort: backend.Port(), Public: true}, {Name: "api", PodPort: backend.Port(), Public: true}}); !errdefs.IsConflict(err) {
		t.Errorf("flipping public while listening: %v, want conflict", err)
	}
}
