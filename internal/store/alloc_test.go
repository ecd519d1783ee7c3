package store

import (
	"context"
	"errors"
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

func TestPortAllocation(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	mustCreate(t, s, "p2", "api")
	pool := PortRange(30000, 30003)

	http, err := s.AllocatePort(ctx, "p1", "http", 0, pool)
	if err != nil || http < 30000 || http > 30003 {
		t.Fatalf("AllocatePort = %d, %v", http, err)
	}
	if again, err := s.AllocatePort(ctx, "p1", "http", 0, pool); err != nil || again != http {
		t.Fatalf("second AllocatePort = %d, %v; want stable %d", again, err, http)
	}
	if _, err := s.AllocatePort(ctx, "p1", "http", otherThan(http), nil); !errdefs.IsConflict(err) {
		t.Fatalf("AllocatePort with a different wanted port = %v, want conflict", err)
	}
	if _, err := s.AllocatePort(ctx, "p2", "http", http, nil); !errdefs.IsConflict(err) {
		t.Fatalf("AllocatePort of a held port = %v, want conflict", err)
	}
	want := otherThan(http)
	if got, err := s.AllocatePort(ctx, "p2", "http", want, nil); err != nil || got != want {
		t.Fatalf("AllocatePort(want %d) = %d, %v", want, got, err)
	}
	if _, err := s.AllocatePort(ctx, "p2", "ssh", 0, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocatePort(ctx, "p1", "ide", 0, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocatePort(ctx, "p1", "extra", 0, pool); !errors.Is(err, errdefs.ErrResourceLimit) {
		t.Fatalf("AllocatePort from a full range = %v, want resource limit", err)
	}
	// The picker's choice is checked, not trusted.
	if _, err := s.AllocatePort(ctx, "p1", "bad", 0, func(map[int]bool) (int, error) { return http, nil }); err == nil {
		t.Fatal("picker returning a used port accepted")
	}
	for _, bad := range []struct {
		pod, name string
		want      int
	}{{"P1", "x", 1}, {"p1", "", 1}, {"p1", "a/b", 1}, {"p1", "x", 70000}, {"p1", "x", -1}, {"p1", "x", 0}} {
		if _, err := s.AllocatePort(ctx, bad.pod, bad.name, bad.want, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("AllocatePort(%+v) = %v, want invalid argument", bad, err)
		}
	}

	all, err := s.ListPortAllocations(ctx, "")
	if err != nil || len(all) != 4 {
		t.Fatalf("ListPortAllocations = %+v, %v", all, err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].HostPort >= all[i].HostPort {
			t.Fatalf("not sorted by host port: %+v", all)
		}
	}
	p1, _ := s.ListPortAllocations(ctx, "p1")
	if len(p1) != 2 {
		t.Fatalf("p1 allocations %+v", p1)
	}

	if err := s.ReleasePort(ctx, "p2", "ssh"); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleasePort(ctx, "p2", "ssh"); err != nil {
		t.Fatalf("second ReleasePort = %v", err)
	}
	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	left, _ := s.ListPortAllocations(ctx, "")
	if len(left) != 1 || left[0].PodID != "p2" || left[0].Name != "http" || left[0].HostPort != want {
		t.Fatalf("after DeletePod(p1) and ReleasePort(p2/ssh): %+v", left)
	}
	// p1's ports are free for others.
	if got, err := s.AllocatePort(ctx, "p2", "again", http, nil); err != nil || got != http {
		t.Fatalf("reuse of a released port = %d, %v", got, err)
	}
	if err := s.ReleasePorts(ctx, "p2"); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.ListPortAllocations(ctx, ""); len(left) != 0 {
		t.Fatalf("after ReleasePorts: %+v", left)
	}
}

func otherThan(p int) int {
	if p == 30000 {
		return 30001
	}
	return 30000
}

func TestSubnetAllocation(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for _, id := range []string{"p1", "p2", "p3"} {
		mustCreate(t, s, id, "n-"+id)
	}
	pool := SubnetPool(mustPrefix(t, "10.99.0.0/23"), 24)
	a, err := s.AllocateSubnet(ctx, "p1", pool)
	if err != nil || a != mustPrefix(t, "10.99.0.0/24") {
		t.Fatalf("AllocateSubnet(p1) = %v, %v", a, err)
	}
	if again, _ := s.AllocateSubnet(ctx, "p1", pool); again != a {
		t.Fatalf("second AllocateSubnet(p1) = %v, want stable %v", again, a)
	}
	b, err := s.AllocateSubnet(ctx, "p2", pool)
	if err != nil || b != mustPrefix(t, "10.99.1.0/24") {
		t.Fatalf("AllocateSubnet(p2) = %v, %v", b, err)
	}
	if _, err := s.AllocateSubnet(ctx, "p3", pool); !errors.Is(err, errdefs.ErrResourceLimit) {
		t.Fatalf("AllocateSubnet from a full pool = %v", err)
	}
	overlapping := func([]netip.Prefix) (netip.Prefix, error) { return mustPrefix(t, "10.99.0.128/25"), nil }
	if _, err := s.AllocateSubnet(ctx, "p3", overlapping); !errdefs.IsConflict(err) {
		t.Fatalf("overlapping pick = %v, want conflict", err)
	}
	unmasked := func([]netip.Prefix) (netip.Prefix, error) {
		return netip.PrefixFrom(netip.MustParseAddr("10.98.0.1"), 24), nil
	}
	if _, err := s.AllocateSubnet(ctx, "p3", unmasked); err == nil {
		t.Fatal("unmasked pick accepted")
	}
	list, _ := s.ListSubnets(ctx)
	if len(list) != 2 || list[0].PodID != "p1" || list[1].Prefix != b {
		t.Fatalf("ListSubnets = %+v", list)
	}
	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.AllocateSubnet(ctx, "p3", pool); err != nil || c != a {
		t.Fatalf("AllocateSubnet after p1 deleted = %v, %v; want %v", c, err, a)
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

func TestSubnetPool(t *testing.T) {
	for _, tc := range []struct {
		pool string
		bits int
		used []string
		want string // "" = resource limit, "invalid" = invalid argument
	}{
		{"10.0.0.0/16", 24, nil, "10.0.0.0/24"},
		{"10.0.0.0/16", 24, []string{"10.0.0.0/24", "10.0.2.0/24"}, "10.0.1.0/24"},
		{"10.0.0.0/16", 28, []string{"10.0.0.0/25"}, "10.0.0.128/28"},
		{"10.0.0.0/16", 24, []string{"10.0.0.0/8"}, ""},
		{"10.0.255.0/24", 25, []string{"10.0.255.0/25"}, "10.0.255.128/25"},
		{"255.255.255.0/24", 25, []string{"255.255.255.0/25", "255.255.255.128/25"}, ""},
		{"fd00::/64", 112, []string{"fd00::/112"}, "fd00::1:0/112"},
		{"10.0.0.0/16", 8, nil, "invalid"},
		{"10.0.0.1/16", 24, nil, "invalid"},
	} {
		var used []netip.Prefix
		for _, u := range tc.used {
			used = append(used, mustPrefix(t, u))
		}
		got, err := SubnetPool(netip.MustParsePrefix(tc.pool), tc.bits)(used)
		switch tc.want {
		case "":
			if !errors.Is(err, errdefs.ErrResourceLimit) {
				t.Errorf("%s/%d used %v = %v, %v; want resource limit", tc.pool, tc.bits, tc.used, got, err)
			}
		case "invalid":
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s/%d = %v, %v; want invalid argument", tc.pool, tc.bits, got, err)
			}
		default:
			if err != nil || got != mustPrefix(t, tc.want) {
				t.Errorf("%s/%d used %v = %v, %v; want %s", tc.pool, tc.bits, tc.used, got, err, tc.want)
			}
		}
	}
}
