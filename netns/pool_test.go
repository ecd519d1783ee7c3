package netns

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/leakcheck"
)

func warmCount(m *manager) int {
	m.warmMu.Lock()
	defer m.warmMu.Unlock()
	return len(m.warmReady)
}

func waitWarm(t *testing.T, m *manager, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for warmCount(m) < n {
		if time.Now().After(deadline) {
			t.Fatalf("warm pool has %d ready entries after 30s, want %d", warmCount(m), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A pod with the default network gets a warm entry that works as a
// network made for it would (reachable, isolated, NAT'd out); any other
// spec is set up as before; the pool refills; stopping the pool and
// tearing the pods down leaves nothing.
func TestWarmPool(t *testing.T) {
	e := newTestManager(t, WithWarmPool(2))
	x := newInfra(t, e)
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)

	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.RunWarmPool(pctx) }()
	waitWarm(t, e.m, 2)
	if l, _ := e.m.List(ctx); len(l) != 0 {
		t.Errorf("List shows warm entries as pods: %v", l)
	}

	a := setup(t, e, Spec{PodID: "a", Hostname: "alpha"})
	if !strings.HasPrefix(a.NetnsName, e.m.netnsPrefix+warmPrefix) || a.PodID != "a" || a.Hostname != "alpha" || a.SubnetOwner == "" {
		t.Fatalf("default pod did not get a warm entry: %+v", a)
	}
	if got, err := e.m.Get(ctx, "a"); err != nil || got.NetnsName != a.NetnsName {
		t.Fatalf("Get(a) = %+v, %v", got, err)
	}
	if _, err := e.m.Setup(ctx, Spec{PodID: "a"}); err == nil {
		t.Error("second Setup of a claimed pod succeeded")
	}
	// A custom subnet cannot come from the pool.
	b := setup(t, e, Spec{PodID: "b", Subnet: netip.PrefixFrom(nthAddr(e.pool, 1792), 28)})
	if b.NetnsName != e.m.netnsPrefix+"b" {
		t.Errorf("custom-subnet pod got %s, want its own namespace", b.NetnsName)
	}

	listenIn(t, a.NetnsPath, a.IP.String()+":8080")
	mustReach(t, "host->a", "", a.IP.String()+":8080")
	gw := a.Gateway.String() + ":9092"
	listenIn(t, "", gw)
	mustNotReach(t, "a->own gateway", a.NetnsPath, gw)
	mustNotReach(t, "a->private", a.NetnsPath, x.private)
	mustReach(t, "a->internet", a.NetnsPath, x.internet)
	if _, hosts, _ := a.Files(); !strings.Contains(string(hosts), "alpha") {
		t.Errorf("hosts file does not name the pod's hostname:\n%s", hosts)
	}

	waitWarm(t, e.m, 2) // refilled

	for _, id := range []string{"a", "b"} {
		if err := e.m.Teardown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.m.recordIDs(); len(ids) != 0 {
		t.Errorf("records left after the pool stopped: %v", ids)
	}
	if used, _ := e.m.store.List(ctx); len(used) != 0 {
		t.Errorf("subnet reservations left: %v", used)
	}
	checkNoLeak(t, e, before)
}

// Entries a crashed process left are torn down by the next one, except
// one whose claim got as far as the pod's record: that network is the
// pod's, and only the entry's stale record goes. A reservation without a
// record is freed; the half-claimed one is kept for the pod.
func TestWarmPoolLeftovers(t *testing.T) {
	e := newTestManager(t, WithWarmPool(1))
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	left := setup(t, e, Spec{PodID: warmPrefix + "left"})
	half := setup(t, e, Spec{PodID: warmPrefix + "half"})
	// A claim interrupted between writing the pod's record and removing
	// the entry's.
	claimed := *half
	claimed.PodID, claimed.SubnetOwner = "p", half.PodID
	if err := e.m.writeRecord("p", &claimed); err != nil {
		t.Fatal(err)
	}

	// A crash between reserving an entry's subnet and writing its record.
	if _, err := e.m.store.Reserve(ctx, warmPrefix+"orphan", netip.Prefix{}, nil); err != nil {
		t.Fatal(err)
	}

	if err := e.m.drainWarm(ctx, true); err != nil { // as RunWarmPool starts
		t.Fatal(err)
	}
	used, _ := e.m.store.List(ctx)
	for _, u := range used {
		if u.Owner == warmPrefix+"orphan" || u.Owner == left.PodID {
			t.Errorf("reservation of %s survived the drain", u.Owner)
		}
	}
	if nsAlive(left.NetnsPath) {
		t.Errorf("leftover entry %s survived the drain", left.NetnsName)
	}
	if _, err := os.Stat(e.m.recordPath(half.PodID)); err == nil {
		t.Errorf("stale record of the half-claimed entry survived")
	}
	p, err := e.m.Get(ctx, "p")
	if err != nil || !nsAlive(p.NetnsPath) {
		t.Fatalf("the pod lost its half-claimed network: %+v %v", p, err)
	}
	if err := e.m.Teardown(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if used, _ := e.m.store.List(ctx); len(used) != 0 {
		t.Errorf("subnet reservations left: %v", used)
	}
	checkNoLeak(t, e, before)
}

// An entry allows DNS to the resolvers the host had when it was made: once
// the host's change, claiming it would leave the pod without DNS, so Setup
// makes the pod a network of its own and drops the stale entry.
func TestWarmPoolStaleDNS(t *testing.T) {
	var ns atomic.Value
	ns.Store("10.201.255.53")
	e := newTestManager(t, WithWarmPool(1), WithHostDNS(func() (DNS, error) {
		return DNS{Nameservers: []netip.Addr{netip.MustParseAddr(ns.Load().(string))}}, nil
	}))
	ctx := context.Background()
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.RunWarmPool(pctx) }()
	defer func() { stop(); <-done }()
	waitWarm(t, e.m, 1)
	e.m.warmMu.Lock()
	stale := e.m.warmReady[0]
	e.m.warmMu.Unlock()

	ns.Store("10.201.255.54")
	a := setup(t, e, Spec{PodID: "fresh"})
	if a.NetnsName != e.m.netnsPrefix+"fresh" || len(a.DNS.Nameservers) != 1 || a.DNS.Nameservers[0].String() != "10.201.255.54" {
		t.Fatalf("after the host's resolvers changed, Setup gave %s with %v; want its own network with the new resolver", a.NetnsName, a.DNS.Nameservers)
	}
	if _, err := os.Stat(e.m.recordPath(stale)); err == nil {
		t.Errorf("stale entry %s was not dropped", stale)
	}
	if err := e.m.Teardown(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
}

// releases records the owners a SubnetStore was asked to release.
type releases struct {
	SubnetStore
	mu  sync.Mutex
	got []string
}

func (r *releases) Release(ctx context.Context, owner string) error {
	r.mu.Lock()
	r.got = append(r.got, owner)
	r.mu.Unlock()
	return r.SubnetStore.Release(ctx, owner)
}

// Remake of a network whose namespace a reboot took gives the pod the
// same address, on the reservation it held (a claimed warm entry's
// here), which is never released in between: the pool's refill, running
// meanwhile, cannot take it.
func TestRemakeKeepsSubnet(t *testing.T) {
	e := newTestManager(t, WithWarmPool(1))
	rec := &releases{SubnetStore: e.m.store}
	e.m.store = rec // before the pool's filler reads it
	ctx := context.Background()
	before := leakcheck.Take(ctx, e.leakFilter()...)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.RunWarmPool(pctx) }()
	waitWarm(t, e.m, 1)
	a := setup(t, e, Spec{PodID: "a"})
	if a.SubnetOwner == "" {
		t.Fatalf("pod a did not claim the warm entry: %+v", a)
	}
	run(t, "ip", "netns", "del", a.NetnsName)
	rec.mu.Lock()
	rec.got = nil
	rec.mu.Unlock()
	b, err := e.m.Remake(ctx, Spec{PodID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if b.IP != a.IP || b.Subnet != a.Subnet || b.SubnetOwner != a.SubnetOwner {
		t.Fatalf("remade: %s on %s held by %q; was %s on %s held by %q", b.IP, b.Subnet, b.SubnetOwner, a.IP, a.Subnet, a.SubnetOwner)
	}
	rec.mu.Lock()
	if len(rec.got) > 0 {
		t.Errorf("Remake released reservations %v", rec.got)
	}
	rec.mu.Unlock()
	mustReachSelf(t, b)
	waitWarm(t, e.m, 1)
	if err := e.m.Teardown(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, e, before)
}
