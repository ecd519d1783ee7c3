package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestAllocateSubnet(t *testing.T) {
	pool := pfx("10.201.0.0/24")
	for _, tc := range []struct {
		name string
		used []Used
		want string
	}{
		{"empty", nil, "10.201.0.0/28"},
		{"first taken", []Used{{pfx("10.201.0.0/28"), "a"}}, "10.201.0.16/28"},
		{"bigger hole skipped", []Used{{pfx("10.201.0.0/26"), "a"}}, "10.201.0.64/28"},
		{"host route inside", []Used{{pfx("10.201.0.5/32"), "host"}}, "10.201.0.16/28"},
		{"outside pool ignored", []Used{{pfx("10.0.0.0/24"), "x"}}, "10.201.0.0/28"},
		{"supernet of pool", []Used{{pfx("10.201.0.0/16"), "route"}}, ""},
		{"gap", []Used{{pfx("10.201.0.0/28"), "a"}, {pfx("10.201.0.32/27"), "b"}}, "10.201.0.16/28"},
	} {
		got, err := AllocateSubnet(pool, 28, tc.used)
		if tc.want == "" {
			if !errors.Is(err, errdefs.ErrResourceLimit) {
				t.Errorf("%s: got %v, %v; want resource limit", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != pfx(tc.want) {
			t.Errorf("%s: got %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	// Exhaustion: 16 /28s in a /24.
	var used []Used
	for i := range 16 {
		p, err := AllocateSubnet(pool, 28, used)
		if err != nil {
			t.Fatalf("alloc %d: %v", i, err)
		}
		used = append(used, Used{p, fmt.Sprint(i)})
	}
	if _, err := AllocateSubnet(pool, 28, used); !errors.Is(err, errdefs.ErrResourceLimit) {
		t.Fatalf("17th alloc: %v, want resource limit", err)
	}
	if _, err := AllocateSubnet(pool, 8, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("/8 from /24: %v", err)
	}
}

func TestCheckSubnet(t *testing.T) {
	pool := pfx("10.201.0.0/20")
	used := []Used{{pfx("10.201.0.0/28"), "pod a"}, {pfx("192.168.7.0/24"), "host route 192.168.7.0/24 dev eth1"}}
	for _, tc := range []struct {
		want string
		err  error
		msg  string
	}{
		{"10.201.1.0/24", nil, ""},                                // inside pool, free
		{"172.20.0.0/24", nil, ""},                                // outside pool, private
		{"10.201.0.0/24", errdefs.ErrConflict, "pod a"},           // overlaps a pod
		{"192.168.7.128/25", errdefs.ErrConflict, "dev eth1"},     // overlaps a host route
		{"10.200.0.0/15", errdefs.ErrConflict, "straddles"},       // contains the pool
		{"198.18.0.0/24", errdefs.ErrInvalidArgument, "private"},  // public
		{"169.254.1.0/24", errdefs.ErrInvalidArgument, "private"}, // link-local
		{"10.201.1.1/24", errdefs.ErrInvalidArgument, "network"},  // host bits
	} {
		p, err := netip.ParsePrefix(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckSubnet(p, pool, used)
		if tc.err == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.want, err)
			}
			continue
		}
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v; want %v naming %q", tc.want, err, tc.err, tc.msg)
		}
	}
}

// The in-memory store a Manager uses when given none keeps the SubnetStore
// contract under concurrent use (storeadapt tests the node's own).
func TestMemSubnetStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s1 := newMemSubnetStore(pfx("10.201.0.0/24"), 28)
	s2 := s1
	var wg sync.WaitGroup
	got := make([]netip.Prefix, 16)
	errs := make([]error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := s1
			if i%2 == 1 {
				s = s2
			}
			got[i], errs[i] = s.Reserve(ctx, fmt.Sprintf("p%d", i), netip.Prefix{}, nil)
		}()
	}
	wg.Wait()
	seen := map[netip.Prefix]bool{}
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("reserve %d: %v", i, errs[i])
		}
		if seen[got[i]] {
			t.Fatalf("subnet %s handed out twice", got[i])
		}
		seen[got[i]] = true
	}
	if _, err := s1.Reserve(ctx, "p16", netip.Prefix{}, nil); !errors.Is(err, errdefs.ErrResourceLimit) {
		t.Fatalf("pool full: %v", err)
	}
	// Idempotent for the same owner; conflicting ask refused.
	again, err := s2.Reserve(ctx, "p3", netip.Prefix{}, nil)
	if err != nil || again != got[3] {
		t.Fatalf("re-reserve p3 = %v, %v; want %v", again, err, got[3])
	}
	if _, err := s2.Reserve(ctx, "p3", pfx("172.20.0.0/24"), nil); !errdefs.IsConflict(err) {
		t.Fatalf("p3 asks for another subnet: %v", err)
	}
	if err := s1.Release(ctx, "p3"); err != nil {
		t.Fatal(err)
	}
	if err := s1.Release(ctx, "p3"); err != nil {
		t.Fatalf("release twice: %v", err)
	}
	// The hole is reused, and a custom subnet clashing with a pod names it.
	if p, err := s1.Reserve(ctx, "new", netip.Prefix{}, nil); err != nil || p != got[3] {
		t.Fatalf("reuse: %v %v want %v", p, err, got[3])
	}
	_, err = s1.Reserve(ctx, "custom", pfx("10.201.0.0/27"), nil)
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p") && !strings.Contains(err.Error(), "pod new") {
		t.Fatalf("custom overlap: %v", err)
	}
	list, _ := s1.List(ctx)
	if len(list) != 16 {
		t.Fatalf("list has %d entries, want 16", len(list))
	}
}

func TestSpecValidate(t *testing.T) {
	ok := []Spec{
		{PodID: "a"},
		{PodID: "a", Policy: Policy{Mode: ModeNone}},
		{PodID: "a", Subnet: pfx("172.20.0.0/24"), Policy: Policy{Mode: ModeAllowlist, Allow: []Rule{{CIDR: pfx("1.2.3.0/24"), Ports: []uint16{443}, Protocol: "tcp"}}}},
		{PodID: "a", Bandwidth: &Bandwidth{IngressRate: 1e6}},
	}
	for i, s := range ok {
		if err := s.Validate(); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	bad := map[string]Spec{
		"id":          {PodID: "../x"},
		"mode":        {PodID: "a", Policy: Policy{Mode: "open"}},
		"none+rules":  {PodID: "a", Policy: Policy{Mode: ModeNone, Deny: []Rule{{CIDR: pfx("1.0.0.0/8")}}}},
		"none+subnet": {PodID: "a", Subnet: pfx("172.20.0.0/24"), Policy: Policy{Mode: ModeNone}},
		"cidr":        {PodID: "a", Policy: Policy{Allow: []Rule{{CIDR: pfx("1.2.3.4/24")}}}},
		"proto":       {PodID: "a", Policy: Policy{Allow: []Rule{{CIDR: pfx("1.2.3.0/24"), Protocol: "sctp"}}}},
		"icmp ports":  {PodID: "a", Policy: Policy{Allow: []Rule{{CIDR: pfx("1.2.3.0/24"), Protocol: "icmp", Ports: []uint16{1}}}}},
		"subnet /31":  {PodID: "a", Subnet: pfx("172.20.0.0/31")},
		"burst":       {PodID: "a", Bandwidth: &Bandwidth{IngressBurst: 1}},
		"dns lo":      {PodID: "a", DNS: DNS{Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53")}}},
		"hostname":    {PodID: "a", Hostname: "Bad_Host"},
	}
	for name, s := range bad {
		if err := s.Validate(); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want invalid argument", name, err)
		}
	}
}
