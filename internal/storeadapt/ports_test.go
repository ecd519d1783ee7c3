package storeadapt

import (
	"context"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/portfwd"
)

// portImpl is one AllocationStore under test: open gives a fresh handle on
// the same storage (a node restart), closing the previous one.
type portImpl struct {
	name string
	open func(t *testing.T) portfwd.AllocationStore
}

func portImpls(t *testing.T, pods ...string) []portImpl {
	dir := t.TempDir()
	var st *store.Store
	return []portImpl{
		{"bolt", func(t *testing.T) portfwd.AllocationStore {
			path := filepath.Join(dir, store.FileName)
			if st != nil {
				st.Close()
				st = boltAt(t, path)
			} else {
				st = boltAt(t, path)
				createPods(t, st, pods...)
			}
			return PortStore(st)
		}},
	}
}

func alloc(pod, name string, podPort, hostPort uint16) portfwd.Allocation {
	return portfwd.Allocation{PodID: pod, Name: name, PodPort: podPort, HostPort: hostPort}
}

func load(t *testing.T, s portfwd.AllocationStore) []portfwd.Allocation {
	t.Helper()
	got, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return got
}

// TestPortStoreContract runs the AllocationStore contract against the
// bbolt adapter.
func TestPortStoreContract(t *testing.T) {
	ctx := context.Background()
	results := map[string][][]portfwd.Allocation{}
	for _, impl := range portImpls(t, "a", "b") {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			record := func(step string) []portfwd.Allocation {
				got := load(t, s)
				if len(got) == 0 {
					got = nil // empty, however the store spells it
				}
				results[impl.name] = append(results[impl.name], got)
				return got
			}
			if got := record("empty"); len(got) != 0 {
				t.Fatalf("empty store loads %+v", got)
			}
			a := []portfwd.Allocation{alloc("a", "web", 3000, 25110), alloc("a", "", 22, 25101)}
			a[1].Explicit = true
			b := []portfwd.Allocation{alloc("b", "web", 3000, 25105)}
			if err := s.Save(ctx, "b", b); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(ctx, "a", a); err != nil {
				t.Fatal(err)
			}
			// Sorted by pod, each pod in saved order.
			if got, want := record("saved"), append(append([]portfwd.Allocation{}, a...), b...); !reflect.DeepEqual(got, want) {
				t.Fatalf("Load = %+v, want %+v", got, want)
			}
			// Save replaces the pod's whole set.
			a2 := []portfwd.Allocation{alloc("a", "ide", 8080, 25101)}
			if err := s.Save(ctx, "a", a2); err != nil {
				t.Fatal(err)
			}
			// A set naming another pod is refused and changes nothing.
			if err := s.Save(ctx, "a", []portfwd.Allocation{alloc("b", "x", 1, 25120)}); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Save of another pod's allocation = %v", err)
			}
			if got, want := record("replaced"), append(append([]portfwd.Allocation{}, a2...), b...); !reflect.DeepEqual(got, want) {
				t.Fatalf("after replace Load = %+v, want %+v", got, want)
			}
			// Persisted across a restart.
			s = impl.open(t)
			if got := record("reopened"); len(got) != 2 {
				t.Fatalf("after reopen Load = %+v", got)
			}
			if err := s.Delete(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"b", "never"} {
				if err := s.Delete(ctx, id); err != nil {
					t.Fatalf("Delete(%s) of nothing = %v", id, err)
				}
			}
			if err := s.Save(ctx, "a", nil); err != nil {
				t.Fatal(err)
			}
			if got := record("deleted"); len(got) != 0 {
				t.Fatalf("after deletes Load = %+v", got)
			}
		})
	}
}

func TestPortStoreConflictsAndPodLifetime(t *testing.T) {
	ctx := context.Background()
	st, path := boltTemp(t)
	createPods(t, st, "a", "b")
	s := PortStore(st)
	a := []portfwd.Allocation{alloc("a", "web", 3000, 25130), alloc("a", "", 22, 25131)}
	if err := s.Save(ctx, "a", a); err != nil {
		t.Fatal(err)
	}
	b := []portfwd.Allocation{alloc("b", "web", 3000, 25132)}
	if err := s.Save(ctx, "b", b); err != nil {
		t.Fatal(err)
	}
	// b wants a's unnamed port: conflict naming pod a, and b keeps its set.
	err := s.Save(ctx, "b", []portfwd.Allocation{alloc("b", "web", 3000, 25133), alloc("b", "ssh", 22, 25131)})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod a (port #22)") {
		t.Fatalf("Save of a held port = %v, want conflict naming pod a (port #22)", err)
	}
	if got := load(t, s); !reflect.DeepEqual(got, append(append([]portfwd.Allocation{}, a...), b...)) {
		t.Fatalf("failed Save changed the store: %+v", got)
	}
	if err := s.Save(ctx, "ghost", []portfwd.Allocation{alloc("ghost", "web", 1, 25140)}); !errdefs.IsNotFound(err) {
		t.Fatalf("Save for a pod with no record = %v, want not found", err)
	}
	// Deleting the pod record frees its ports: b may take them now, and a
	// restarted store does not bring a's back.
	if err := st.DeletePod(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	b2 := []portfwd.Allocation{alloc("b", "web", 3000, 25130), alloc("b", "ssh", 22, 25131)}
	if err := s.Save(ctx, "b", b2); err != nil {
		t.Fatalf("ports of a deleted pod not free: %v", err)
	}
	st.Close()
	st = boltAt(t, path)
	if got := load(t, PortStore(st)); !reflect.DeepEqual(got, b2) {
		t.Fatalf("after reopen Load = %+v, want %+v", got, b2)
	}
}

// TestForwarderOnBolt drives a real forwarder on the adapter: it forwards,
// and a forwarder on the reopened store (a node restart) has the same ports.
func TestForwarderOnBolt(t *testing.T) {
	ctx := context.Background()
	loopback := netip.MustParseAddr("127.0.0.1")
	st, path := boltTemp(t)
	createPods(t, st, "a", "b")
	newFwd := func(st *store.Store) portfwd.Forwarder {
		f, err := portfwd.New(ctx, portfwd.WithStore(PortStore(st)), portfwd.WithPortRange(25100, 25199), portfwd.WithListenAddr(loopback))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close(context.Background()) })
		return f
	}
	backend := echoServer(t)
	f1 := newFwd(st)
	reqA := []portfwd.PortRequest{{Name: "web", PodPort: backend.Port()}, {Name: "ssh", PodPort: 22}}
	a, err := f1.Allocate(ctx, "a", reqA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f1.Allocate(ctx, "b", []portfwd.PortRequest{{Name: "web", PodPort: 3000, HostPort: 25190}})
	if err != nil {
		t.Fatal(err)
	}
	// Another pod asking for b's explicit port is refused, naming b.
	if _, err := f1.Allocate(ctx, "a", []portfwd.PortRequest{{Name: "x", PodPort: 1, HostPort: 25190}}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod b") {
		t.Fatalf("taken explicit port: %v", err)
	}
	if err := f1.Start(ctx, "a", loopback); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, netip.AddrPortFrom(loopback, a[0].HostPort))
	want := f1.Allocations("")
	if err := f1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = boltAt(t, path)
	f2 := newFwd(st)
	if got := f2.Allocations(""); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restart %+v, want %+v", got, want)
	}
	a2, err := f2.Allocate(ctx, "a", reqA)
	if err != nil || !reflect.DeepEqual(a2, a) {
		t.Fatalf("re-Allocate after restart = %+v, %v; want %+v", a2, err, a)
	}
	if err := f2.Start(ctx, "a", loopback); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, netip.AddrPortFrom(loopback, a[0].HostPort))
	if err := f2.Release(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := load(t, PortStore(st)); len(got) != 2 || got[0].PodID != "a" {
		t.Fatalf("after Release(b) the store holds %+v", got)
	}
	if c, err := f2.Allocate(ctx, "a", append(reqA, portfwd.PortRequest{Name: "x", PodPort: 1, HostPort: b[0].HostPort})); err == nil {
		t.Fatalf("re-Allocate while listening changed ports: %+v", c)
	}
}

func echoServer(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func roundTrip(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through %s = %q, %v", addr, buf, err)
	}
}
