package dnat_test

import (
	"context"
	"testing"

	"github.com/pinacle/pinacle-node/portfwd"
)

// BenchmarkApplyRemove is the cost the kernel path adds to a pod's start
// (Apply) and stop (Remove): each is one iptables-save -c and one
// iptables-restore.
//
//	go test ./portfwd/dnat -run '^$' -bench . -benchtime 20x
func BenchmarkApplyRemove(b *testing.B) {
	requireRoot(b)
	b.Cleanup(func() { noChains(b) })
	tp := newTopo(b, 6)
	k := newKernel(b, b.Name())
	ctx := context.Background()
	ports := []portfwd.Allocation{{PodID: "bench", PodPort: 8080, HostPort: 41960}, {PodID: "bench", PodPort: 22, HostPort: 41961}}
	for b.Loop() {
		if err := k.Apply(ctx, "bench", tp.podIP, ports); err != nil {
			b.Fatal(err)
		}
		if err := k.Remove(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	k.Release(ctx, "bench")
}

// BenchmarkCounters is the cost Stats pays per call (one iptables-save -c).
func BenchmarkCounters(b *testing.B) {
	requireRoot(b)
	b.Cleanup(func() { noChains(b) })
	tp := newTopo(b, 7)
	k := newKernel(b, b.Name())
	ctx := context.Background()
	if err := k.Apply(ctx, "bench", tp.podIP, []portfwd.Allocation{{PodID: "bench", PodPort: 8080, HostPort: 41962}}); err != nil {
		b.Fatal(err)
	}
	defer k.Release(ctx, "bench")
	for b.Loop() {
		if _, err := k.Counters(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
