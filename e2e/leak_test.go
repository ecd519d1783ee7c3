package e2e

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/leakcheck"
)

// What the node and the tests name: pinacle dirs and cgroups, PINACLE
// iptables chains, pn* bridges, veths and qdiscs, pnt-* test namespaces.
func suiteProbe() leakcheck.Probe {
	return leakcheck.Probe{
		Filter: []string{"pinacle", "PINACLE", "pn", workRoot},
		Procs:  []string{workRoot}, // daemons, runsc sandboxes and gofers, forwarders
	}
}

// leakGuards holds each running test's guard: one per test, however many
// daemons it starts.
var leakGuards sync.Map // *testing.T -> *leakGuard

type leakGuard struct {
	mu sync.Mutex
	p  leakcheck.Probe
}

// guardLeaks snapshots the host before a test's first daemon starts and,
// when the test ends (after every daemon's own cleanup, registered later,
// has run), fails the test if anything it made is left: host resources,
// processes started from its daemons' directories, and per-pod files
// under their data roots. One check per test, not per daemon: a check
// that ran while another of the test's daemons was up would call that
// daemon's live resources (its warm pool refilling, say) a leak. The
// suite-level check in TestMain still runs; this one names the test.
func guardLeaks(t *testing.T, dir string) {
	t.Helper()
	data := filepath.Join(dir, "data")
	add := func(p *leakcheck.Probe) {
		p.Procs = append(p.Procs, dir)
		p.Roots = append(p.Roots, filepath.Join(data, "pods"), filepath.Join(data, "leases"), filepath.Join(data, "netns", "pods"))
	}
	if v, ok := leakGuards.Load(t); ok {
		g := v.(*leakGuard)
		g.mu.Lock()
		add(&g.p) // nothing of a new directory is in the snapshot: all of it is new
		g.mu.Unlock()
		return
	}
	g := &leakGuard{p: suiteProbe()}
	g.p.Procs = nil
	add(&g.p)
	ctx := context.Background()
	before := g.p.Take(ctx)
	if err := before.Err(); err != nil {
		t.Fatal(err)
	}
	leakGuards.Store(t, g)
	t.Cleanup(func() {
		leakGuards.Delete(t)
		g.mu.Lock()
		p := g.p
		g.mu.Unlock()
		if err := p.Check(ctx, before, 10*time.Second); err != nil {
			t.Errorf("%s leaked: %v", t.Name(), err)
		}
	})
}
