package e2e

import (
	"context"
	"path/filepath"
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

// guardLeaks snapshots the host before a test's daemon starts and, when the
// test ends (after the daemon's own cleanup, registered later, has run),
// fails the test if anything it made is left: host resources, processes
// started from its directory, and per-pod files under its data root. The
// suite-level check in TestMain still runs; this one names the test.
func guardLeaks(t *testing.T, dir string) {
	t.Helper()
	p := suiteProbe()
	p.Procs = []string{dir}
	data := filepath.Join(dir, "data")
	p.Roots = []string{filepath.Join(data, "pods"), filepath.Join(data, "leases"), filepath.Join(data, "netns", "pods")}
	ctx := context.Background()
	before := p.Take(ctx)
	if err := before.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Check(ctx, before, 10*time.Second); err != nil {
			t.Errorf("%s leaked: %v", t.Name(), err)
		}
	})
}
