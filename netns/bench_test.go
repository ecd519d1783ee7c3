package netns

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkSetupTeardown reports the median Setup (netns + CNI ADD with
// bridge, host-local, bandwidth + policy chains) and Teardown.
// Run: go test -run '^$' -bench SetupTeardown -benchtime 20x ./netns/
func BenchmarkSetupTeardown(b *testing.B) {
	e := newTestManager(b)
	ctx := context.Background()
	var setups, teardowns []time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		t0 := time.Now()
		if _, err := e.m.Setup(ctx, Spec{PodID: id, Bandwidth: &Bandwidth{IngressRate: 100e6, EgressRate: 100e6}}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := e.m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		setups, teardowns = append(setups, t1.Sub(t0)), append(teardowns, time.Since(t1))
	}
	b.ReportMetric(float64(p50(setups).Microseconds())/1000, "setup-p50-ms")
	b.ReportMetric(float64(p50(teardowns).Microseconds())/1000, "teardown-p50-ms")
}

// BenchmarkApplyPolicy times what claiming a pre-made namespace from a warm
// pool would still have to do per pod: replace the pod's iptables chains
// with its own policy (one iptables-save + one iptables-restore).
func BenchmarkApplyPolicy(b *testing.B) {
	e := newTestManager(b)
	ctx := context.Background()
	a, err := e.m.Setup(ctx, Spec{PodID: "claim"})
	if err != nil {
		b.Fatal(err)
	}
	p := Policy{Mode: ModeAllowlist, Allow: []Rule{{CIDR: pfx("198.18.0.0/15"), Ports: []uint16{80, 443}}}}
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := e.m.removeChains(ctx, "filter", a.EgressChain, a.HostChain); err != nil {
			b.Fatal(err)
		}
		if err := e.m.installChains(ctx, a, p); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	b.ReportMetric(float64(p50(ds).Microseconds())/1000, "claim-p50-ms")
}
