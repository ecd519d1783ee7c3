package portfwd_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

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
func (b *brokenKernel) Remove(context.Context, string) error  { return errBroken }
func (b *brokenKernel) Release(context.Context, string) error { return errBroken }
func (b *brokenKernel) Prune(context.Context, []string) error { return errBroken }
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
	if err := f.SetState("kbroken", portfwd.NotRunning); err != nil {
		t.Fatalf("SetState with a broken kernel path: %v", err)
	}
	expectClosed(t, c)
	if err := f.Release(context.Background(), "kbroken"); err != nil {
		t.Fatalf("Release with a broken kernel path: %v", err)
	}
	if s := f.Stats(); len(s.Pods) != 0 {
		t.Errorf("stats after release: %+v", s)
	}
}
