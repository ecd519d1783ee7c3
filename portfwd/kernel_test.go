package portfwd_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/portfwd"
)

// brokenKernel is a kernel path whose every call fails (iptables gone,
// nat table unusable): a fault to inject, nothing more.
type brokenKernel struct{ applies int }

var errBroken = errors.New("iptables: nat table unusable")

func (b *brokenKernel) Apply(context.Context, string, netip.Addr, []portfwd.Allocation) error {
	b.applies++
	return errBroken
}
func (b *brokenKernel) Remove(context.Context, string) error        { return errBroken }
func (b *brokenKernel) Detach(context.Context, string) (int, error) { return 0, errBroken }
func (b *brokenKernel) Cut(context.Context, string) error           { return errBroken }
func (b *brokenKernel) Release(context.Context, string) error       { return errBroken }
func (b *brokenKernel) Prune(context.Context, []string) error       { return errBroken }
func (b *brokenKernel) Counters(context.Context) (map[string]map[uint16]portfwd.Counters, error) {
	return nil, errBroken
}

// TestKernelPathFailureFallsBackToUserspace: a failing kernel path costs
// nothing but the fast path; every call still succeeds and connections
// are relayed.
func TestKernelPathFailureFallsBackToUserspace(t *testing.T) {
	k := &brokenKernel{}
	f := newFwd(t, 41970, 41979, portfwd.WithKernelPath(k))
	backend := serve(t, echo)
	port := startOne(t, f, "kbroken", backend)
	if k.applies != 1 {
		t.Errorf("Apply called %d times on Start, want 1", k.applies)
	}
	c := dial(t, port)
	if got := roundTrip(t, c, "hello"); got != "hello" {
		t.Fatalf("echo through the relay = %q", got)
	}
	// SetStateIf falls back to what SetState does.
	if err := f.SetStateIf("kbroken", portfwd.Hibernated, func(portfwd.PodStats) bool { return false }); !errors.Is(err, portfwd.ErrActive) {
		t.Fatalf("SetStateIf told no, with a broken kernel path: %v, want ErrActive", err)
	}
	if err := f.SetStateIf("kbroken", portfwd.NotRunning, func(portfwd.PodStats) bool { return true }); err != nil {
		t.Fatalf("SetStateIf with a broken kernel path: %v", err)
	}
	expectClosed(t, c)
	if err := f.Release(context.Background(), "kbroken"); err != nil {
		t.Fatalf("Release with a broken kernel path: %v", err)
	}
	if s := f.Stats(); len(s.Pods) != 0 {
		t.Errorf("stats after release: %+v", s)
	}
}

// TestSetStateIf: told no, the pod stays Running and its open connection
// goes on; told yes, it takes the state and the connection closes. proceed
// sees the pod's counters, and a wrong state is refused.
func TestSetStateIf(t *testing.T) {
	f := newFwd(t, 41980, 41989)
	backend := serve(t, echo)
	port := startOne(t, f, "sif", backend)
	c := dial(t, port)
	if got := roundTrip(t, c, "one"); got != "one" {
		t.Fatalf("echo = %q", got)
	}
	var seen portfwd.PodStats
	err := f.SetStateIf("sif", portfwd.Hibernated, func(ps portfwd.PodStats) bool { seen = ps; return false })
	if !errors.Is(err, portfwd.ErrActive) {
		t.Fatalf("SetStateIf told no: %v, want ErrActive", err)
	}
	if seen.PodID != "sif" || seen.ConnsTotal != 1 || seen.State != portfwd.Hibernated {
		t.Errorf("proceed saw %+v: want the pod's one connection, in the state asked for", seen)
	}
	if got := roundTrip(t, c, "two"); got != "two" {
		t.Fatalf("echo after a called-off SetStateIf = %q: the connection must go on", got)
	}
	if st := f.Stats().Pods[0].State; st != portfwd.Running {
		t.Errorf("state after a called-off SetStateIf = %s, want running", st)
	}
	if err := f.SetStateIf("sif", portfwd.Running, func(portfwd.PodStats) bool { return true }); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("SetStateIf(running) = %v, want ErrInvalidArgument", err)
	}
	if err := f.SetStateIf("sif", portfwd.NotRunning, func(portfwd.PodStats) bool { return true }); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if st := f.Stats().Pods[0].State; st != portfwd.NotRunning {
		t.Errorf("state = %s, want not-running", st)
	}
}
