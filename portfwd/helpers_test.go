package portfwd_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/portfwd"
)

// Every test takes its own sub-range of 26000-27999 (shared with no other
// helper), so tests can run in parallel.

var loopback = netip.MustParseAddr("127.0.0.1")

func newFwd(t testing.TB, lo, hi uint16, opts ...portfwd.Option) portfwd.Forwarder {
	t.Helper()
	opts = append([]portfwd.Option{portfwd.WithListenAddr(loopback), portfwd.WithPortRange(lo, hi)}, opts...)
	f, err := portfwd.New(context.Background(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// serve runs handler for every connection to a new loopback listener until
// the test ends.
func serve(t testing.TB, handler func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []*net.TCPConn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handler(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func echo(c *net.TCPConn) { io.Copy(c, c) }

func dial(t testing.TB, port uint16) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(loopback, port)))
	if err != nil {
		t.Fatalf("dial %d: %v", port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads the same number of bytes back.
func roundTrip(t testing.TB, c net.Conn, msg string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf)
}

// expectClosed asserts the peer closes c (EOF or reset) rather than leave it
// hanging; the deadline only turns a hang into a failure.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection was not closed: %v", err)
	}
}

// poll waits for cond, failing after timeout.
func poll(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func portStats(f portfwd.Forwarder, podID string, hostPort uint16) portfwd.PortStats {
	for _, p := range f.Stats().Pods {
		if p.PodID != podID {
			continue
		}
		for _, ps := range p.Ports {
			if ps.HostPort == hostPort {
				return ps
			}
		}
	}
	return portfwd.PortStats{}
}

// startOne allocates one pool port for pod to backend and starts it.
func startOne(t testing.TB, f portfwd.Forwarder, pod string, backend netip.AddrPort) uint16 {
	t.Helper()
	ctx := context.Background()
	a, err := f.Allocate(ctx, pod, []portfwd.PortRequest{{Name: "web", PodPort: backend.Port()}})
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if err := f.Start(ctx, pod, backend.Addr()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return a[0].HostPort
}

// memStore is an AllocationStore in memory; sharing one between two
// forwarders stands in for a node restart on the same state.
type memStore struct {
	mu     sync.Mutex
	allocs map[string][]portfwd.Allocation
	order  []string
}

var _ portfwd.AllocationStore = (*memStore)(nil)

func newMemStore(allocs ...portfwd.Allocation) *memStore {
	s := &memStore{allocs: map[string][]portfwd.Allocation{}}
	for _, a := range allocs {
		if s.allocs[a.PodID] == nil {
			s.order = append(s.order, a.PodID)
		}
		s.allocs[a.PodID] = append(s.allocs[a.PodID], a)
	}
	return s
}

func (s *memStore) Load(context.Context) ([]portfwd.Allocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []portfwd.Allocation
	for _, pod := range s.order {
		out = append(out, s.allocs[pod]...)
	}
	return out, nil
}

func (s *memStore) Save(_ context.Context, podID string, allocs []portfwd.Allocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.allocs[podID]; !ok {
		s.order = append(s.order, podID)
	}
	s.allocs[podID] = append([]portfwd.Allocation(nil), allocs...)
	return nil
}

func (s *memStore) Delete(_ context.Context, podID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.allocs, podID)
	s.order = slices.DeleteFunc(s.order, func(p string) bool { return p == podID })
	return nil
}
