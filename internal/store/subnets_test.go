package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func mustPrefix(t testing.TB, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pick is a subnet picker that chooses p whatever is in use.
func pick(t testing.TB, p string) func([]SubnetAllocation) (netip.Prefix, error) {
	return func([]SubnetAllocation) (netip.Prefix, error) { return mustPrefix(t, p), nil }
}

func TestSubnetAllocation(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for _, id := range []string{"p1", "p2", "p3"} {
		mustCreate(t, s, id, "n-"+id)
	}
	a, err := s.AllocateSubnetWith(ctx, "p1", pick(t, "10.99.0.0/24"))
	if err != nil || a != mustPrefix(t, "10.99.0.0/24") {
		t.Fatalf("AllocateSubnetWith(p1) = %v, %v", a, err)
	}
	if again, _ := s.AllocateSubnetWith(ctx, "p1", pick(t, "10.99.5.0/24")); again != a {
		t.Fatalf("second AllocateSubnetWith(p1) = %v, want stable %v", again, a)
	}
	b, err := s.AllocateSubnetWith(ctx, "p2", pick(t, "10.99.1.0/24"))
	if err != nil || b != mustPrefix(t, "10.99.1.0/24") {
		t.Fatalf("AllocateSubnetWith(p2) = %v, %v", b, err)
	}
	full := func([]SubnetAllocation) (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("pool full: %w", errdefs.ErrResourceLimit)
	}
	if _, err := s.AllocateSubnetWith(ctx, "p3", full); !errors.Is(err, errdefs.ErrResourceLimit) {
		t.Fatalf("picker's error = %v, want it wrapped", err)
	}
	if _, err := s.AllocateSubnetWith(ctx, "p3", pick(t, "10.99.0.128/25")); !errdefs.IsConflict(err) {
		t.Fatalf("overlapping pick = %v, want conflict", err)
	}
	unmasked := func([]SubnetAllocation) (netip.Prefix, error) {
		return netip.PrefixFrom(netip.MustParseAddr("10.98.0.1"), 24), nil
	}
	if _, err := s.AllocateSubnetWith(ctx, "p3", unmasked); err == nil {
		t.Fatal("unmasked pick accepted")
	}
	if _, err := s.AllocateSubnetWith(ctx, "p3", nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no picker = %v, want invalid argument", err)
	}
	list, _ := s.ListSubnets(ctx)
	if len(list) != 2 || list[0].PodID != "p1" || list[1].Prefix != b {
		t.Fatalf("ListSubnets = %+v", list)
	}
	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.AllocateSubnetWith(ctx, "p3", pick(t, "10.99.0.0/24")); err != nil || c != a {
		t.Fatalf("AllocateSubnetWith after p1 deleted = %v, %v; want %v", c, err, a)
	}
	if err := s.ReleaseSubnet(ctx, "p2"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseSubnet(ctx, "p2"); err != nil {
		t.Fatalf("second ReleaseSubnet = %v", err)
	}
	if list, _ := s.ListSubnets(ctx); len(list) != 1 || list[0].PodID != "p3" {
		t.Fatalf("ListSubnets = %+v", list)
	}
}

// A reservation for an owner that is not a pod (a warm network) needs no
// record and outlives pod deletes; ReleaseSubnet frees it.
func TestReserveSubnetWith(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	w, err := s.ReserveSubnetWith(ctx, "warm-1", pick(t, "10.97.0.0/28"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocateSubnetWith(ctx, "warm-2", pick(t, "10.97.0.16/28")); !errdefs.IsNotFound(err) {
		t.Fatalf("AllocateSubnetWith for a non-pod = %v, want not found", err)
	}
	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListSubnets(ctx); len(list) != 1 || list[0].PodID != "warm-1" || list[0].Prefix != w {
		t.Fatalf("ListSubnets = %+v", list)
	}
	if err := s.ReleaseSubnet(ctx, "warm-1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListSubnets(ctx); len(list) != 0 {
		t.Fatalf("after release: %+v", list)
	}
}
