package storeadapt

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/portfwd"
)

// Figures to compare the bbolt adapters with the JSON file stores they
// replace. Both fsync every write; the file stores rewrite the whole file.

func benchPortSave(b *testing.B, s portfwd.AllocationStore) {
	ctx := context.Background()
	set := []portfwd.Allocation{alloc("p0", "web", 3000, 0), alloc("p0", "ide", 8080, 0), alloc("p0", "term", 7681, 0)}
	b.ResetTimer()
	for i := range b.N {
		for j := range set {
			set[j].HostPort = uint16(30000 + (i*3+j)%9000)
		}
		if err := s.Save(ctx, "p0", set); err != nil {
			b.Fatal(err)
		}
	}
}

// 50 other pods hold ports, so the file store has a realistic file to
// rewrite and bbolt a realistic index.
func otherPods(b *testing.B, s portfwd.AllocationStore) {
	for i := 1; i <= 50; i++ {
		pod := fmt.Sprintf("p%d", i)
		if err := s.Save(context.Background(), pod, []portfwd.Allocation{alloc(pod, "web", 3000, uint16(40000+i))}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPortSaveBolt(b *testing.B) {
	st, _ := boltTemp(b)
	createPods(b, st, podIDs(51)...)
	s := PortStore(st)
	otherPods(b, s)
	benchPortSave(b, s)
}

func benchReserveRelease(b *testing.B, s netns.SubnetStore) {
	ctx := context.Background()
	for i := 1; i <= 50; i++ {
		if _, err := s.Reserve(ctx, fmt.Sprintf("p%d", i), netip.Prefix{}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Reserve(ctx, "p0", netip.Prefix{}, nil); err != nil {
			b.Fatal(err)
		}
		if err := s.Release(ctx, "p0"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubnetReserveReleaseBolt(b *testing.B) {
	st, _ := boltTemp(b)
	createPods(b, st, podIDs(51)...)
	s, err := SubnetStore(st, netip.MustParsePrefix("10.214.0.0/16"), 28)
	if err != nil {
		b.Fatal(err)
	}
	benchReserveRelease(b, s)
}
