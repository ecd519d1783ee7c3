package storeadapt

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/netns"
)

type subnetImpl struct {
	name string
	// open gives a fresh handle on the same storage (a node restart).
	open func(t *testing.T) netns.SubnetStore
}

func subnetImpls(t *testing.T, pool netip.Prefix, bits int, pods ...string) []subnetImpl {
	dir := t.TempDir()
	var st *store.Store
	model := &modelSubnets{pool: pool, bits: bits, subnets: map[string]netip.Prefix{}}
	return []subnetImpl{
		{"model", func(t *testing.T) netns.SubnetStore { return model }},
		{"bolt", func(t *testing.T) netns.SubnetStore {
			path := filepath.Join(dir, store.FileName)
			if st != nil {
				st.Close()
				st = boltAt(t, path)
			} else {
				st = boltAt(t, path)
				createPods(t, st, pods...)
			}
			s, err := SubnetStore(st, pool, bits)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
}

func podIDs(n int, extra ...string) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("p%d", i))
	}
	return append(ids, extra...)
}

// TestSubnetStoreConcurrent is netns's TestMemSubnetStoreConcurrent, run
// against both stores: concurrent Reserves never hand one subnet to two
// owners, a full pool is ErrResourceLimit, Reserve is idempotent, a
// conflicting ask is refused, release frees, and clashes name the holder.
func TestSubnetStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	for _, impl := range subnetImpls(t, testPool, 28, podIDs(17, "new", "custom")...) {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			var wg sync.WaitGroup
			got := make([]netip.Prefix, 16)
			errs := make([]error, 16)
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i], errs[i] = s.Reserve(ctx, fmt.Sprintf("p%d", i), netip.Prefix{}, nil)
				}()
			}
			wg.Wait()
			seen := map[netip.Prefix]bool{}
			for i := range got {
				if errs[i] != nil {
					t.Fatalf("reserve %d: %v", i, errs[i])
				}
				if seen[got[i]] || !testPool.Contains(got[i].Addr()) || got[i].Bits() != 28 {
					t.Fatalf("subnet %s handed out twice or outside the pool", got[i])
				}
				seen[got[i]] = true
			}
			if _, err := s.Reserve(ctx, "p16", netip.Prefix{}, nil); !errors.Is(err, errdefs.ErrResourceLimit) {
				t.Fatalf("pool full: %v", err)
			}
			again, err := s.Reserve(ctx, "p3", netip.Prefix{}, nil)
			if err != nil || again != got[3] {
				t.Fatalf("re-reserve p3 = %v, %v; want %v", again, err, got[3])
			}
			if same, err := s.Reserve(ctx, "p3", got[3], nil); err != nil || same != got[3] {
				t.Fatalf("re-reserve p3 asking for its own subnet = %v, %v", same, err)
			}
			if _, err := s.Reserve(ctx, "p3", pfx("172.20.0.0/24"), nil); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "already holds") {
				t.Fatalf("p3 asks for another subnet: %v", err)
			}
			if err := s.Release(ctx, "p3"); err != nil {
				t.Fatal(err)
			}
			if err := s.Release(ctx, "p3"); err != nil {
				t.Fatalf("release twice: %v", err)
			}
			if p, err := s.Reserve(ctx, "new", netip.Prefix{}, nil); err != nil || p != got[3] {
				t.Fatalf("reuse: %v %v want %v", p, err, got[3])
			}
			_, err = s.Reserve(ctx, "custom", pfx("10.214.0.0/27"), nil)
			if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "of pod p") && !strings.Contains(err.Error(), "of pod new") {
				t.Fatalf("custom overlap: %v", err)
			}
			list, err := s.List(ctx)
			if err != nil || len(list) != 16 {
				t.Fatalf("list has %d entries (%v), want 16", len(list), err)
			}
			// Persisted: a restarted store sees the same reservations.
			if list2, err := impl.open(t).List(ctx); err != nil || !reflect.DeepEqual(list2, list) {
				t.Fatalf("after reopen List = %+v, %v; want %+v", list2, err, list)
			}
		})
	}
}

// TestSubnetStoreSameAnswers runs one sequential script (first-fit is
// deterministic) against the adapter and a model of the SubnetStore
// contract, and wants identical answers: same subnets, same error
// classes, same List.
func TestSubnetStoreSameAnswers(t *testing.T) {
	ctx := context.Background()
	pool := pfx("10.214.4.0/22")
	route := []netns.Used{{Prefix: pfx("10.214.4.32/27"), Owner: "host route 10.214.4.32/27 dev eth9"}}
	type step struct {
		op       string // reserve, release
		owner    string
		want     string
		reserved []netns.Used
	}
	script := []step{
		{"reserve", "a", "", nil},
		{"reserve", "b", "", route},               // skips the host route
		{"reserve", "c", "10.214.4.64/26", nil},   // custom inside the pool
		{"reserve", "d", "", nil},                 // the route is not persisted: d takes it
		{"reserve", "e", "10.214.4.16/29", nil},   // overlaps b
		{"reserve", "e", "172.22.9.0/24", nil},    // custom private range
		{"reserve", "f", "10.214.4.40/29", route}, // overlaps the host route
		{"reserve", "f", "198.51.100.0/24", nil},  // public: invalid
		{"reserve", "f", "10.214.0.0/16", nil},    // straddles the pool
		{"reserve", "f", "10.214.5.1/24", nil},    // host bits set
		{"release", "a", "", nil},
		{"reserve", "f", "", nil}, // a's hole
		{"reserve", "c", "", nil}, // stable
		{"release", "zz", "", nil},
	}
	type answer struct {
		Got  netip.Prefix
		Code string
		List []netns.Used
	}
	answers := map[string][]answer{}
	for _, impl := range subnetImpls(t, pool, 28, "a", "b", "c", "d", "e", "f", "zz") {
		s := impl.open(t)
		for _, st := range script {
			var a answer
			var err error
			switch st.op {
			case "reserve":
				var want netip.Prefix
				if st.want != "" {
					want = netip.MustParsePrefix(st.want)
				}
				a.Got, err = s.Reserve(ctx, st.owner, want, st.reserved)
			case "release":
				err = s.Release(ctx, st.owner)
			}
			if err != nil {
				// A value beside an error means nothing.
				a.Got, a.Code = netip.Prefix{}, errdefs.Classify(err).Code
			}
			if a.List, err = s.List(ctx); err != nil {
				t.Fatalf("%s: List: %v", impl.name, err)
			}
			answers[impl.name] = append(answers[impl.name], a)
		}
	}
	f, b := answers["model"], answers["bolt"]
	for i := range script {
		if !reflect.DeepEqual(f[i], b[i]) {
			t.Errorf("step %d %+v: model %+v, bolt %+v", i, script[i], f[i], b[i])
		}
	}
	// And the script did what it says (so the comparison is not of two
	// equally broken answers).
	if f[1].Got != pfx("10.214.4.16/28") || f[2].Got != pfx("10.214.4.64/26") || f[3].Got != pfx("10.214.4.32/28") {
		t.Errorf("unexpected allocations: %+v", f[:4])
	}
	for i, code := range map[int]string{4: "conflict", 6: "conflict", 7: "invalid_argument", 8: "conflict", 9: "invalid_argument"} {
		if f[i].Code != code {
			t.Errorf("step %d: code %q, want %q", i, f[i].Code, code)
		}
	}
	if f[11].Got != pfx("10.214.4.0/28") {
		t.Errorf("hole not reused: %+v", f[11])
	}
}

func TestSubnetStoreBoltOnly(t *testing.T) {
	ctx := context.Background()
	st, _ := boltTemp(t)
	createPods(t, st, "a", "b")
	for _, bad := range []struct {
		pool netip.Prefix
		bits int
	}{{pfx("fd00::/64"), 120}, {testPool, 20}, {testPool, 31}, {netip.Prefix{}, 24}} {
		if _, err := SubnetStore(st, bad.pool, bad.bits); !errdefs.IsInvalidArgument(err) {
			t.Errorf("SubnetStore(%v, %d) = %v, want invalid argument", bad.pool, bad.bits, err)
		}
	}
	if _, err := SubnetStore(nil, testPool, 28); !errdefs.IsInvalidArgument(err) {
		t.Errorf("nil store: %v", err)
	}
	s, err := SubnetStore(st, testPool, 28)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(ctx, "ghost", netip.Prefix{}, nil); !errdefs.IsNotFound(err) {
		t.Fatalf("Reserve for a pod with no record = %v, want not found", err)
	}
	a, err := s.Reserve(ctx, "a", netip.Prefix{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The adapter and the store's own view agree, and DeletePod frees the
	// subnet for the next pod.
	if all, _ := st.ListSubnets(ctx); len(all) != 1 || all[0].PodID != "a" || all[0].Prefix != a {
		t.Fatalf("ListSubnets = %+v", all)
	}
	if err := st.DeletePod(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(ctx); len(l) != 0 {
		t.Fatalf("deleted pod's subnet still listed: %+v", l)
	}
	if b, err := s.Reserve(ctx, "b", netip.Prefix{}, nil); err != nil || b != a {
		t.Fatalf("Reserve after DeletePod = %v, %v; want %v", b, err, a)
	}
	if err := s.Release(ctx, "a"); err != nil {
		t.Fatalf("Release of a deleted pod = %v", err)
	}
}

// The warm pool's entries hold subnets without being pods; a pod ID still
// needs its pod record, and the reservation outlives pod deletions until
// released.
func TestSubnetStoreWarmOwner(t *testing.T) {
	ctx := context.Background()
	for _, impl := range subnetImpls(t, testPool, 28) {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			got, err := s.Reserve(ctx, "warm-0123abcd", netip.Prefix{}, nil)
			if err != nil || !testPool.Contains(got.Addr()) {
				t.Fatalf("warm owner: %v %v", got, err)
			}
			if impl.name == "bolt" {
				if _, err := s.Reserve(ctx, "pnopod", netip.Prefix{}, nil); !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("a pod ID without a pod record: %v, want not found", err)
				}
			}
			used, _ := s.List(ctx)
			if len(used) != 1 || used[0].Owner != "warm-0123abcd" || used[0].Prefix != got {
				t.Errorf("list = %v", used)
			}
			if err := s.Release(ctx, "warm-0123abcd"); err != nil {
				t.Fatal(err)
			}
			if used, _ := s.List(ctx); len(used) != 0 {
				t.Errorf("after release: %v", used)
			}
		})
	}
}

// modelSubnets is the SubnetStore contract in a few lines, in memory: the
// reference the adapter's answers are compared with. A "restart" keeps it.
type modelSubnets struct {
	pool    netip.Prefix
	bits    int
	mu      sync.Mutex
	subnets map[string]netip.Prefix
}

func (m *modelSubnets) Reserve(_ context.Context, owner string, want netip.Prefix, reserved []netns.Used) (netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if have, ok := m.subnets[owner]; ok {
		if want.IsValid() && want != have {
			return netip.Prefix{}, fmt.Errorf("%s already holds subnet %s, not %s: %w", owner, have, want, errdefs.ErrConflict)
		}
		return have, nil
	}
	used := slices.Clone(reserved)
	for o, p := range m.subnets {
		used = append(used, netns.Used{Prefix: p, Owner: "pod " + o})
	}
	got, err := want, error(nil)
	if want.IsValid() {
		err = netns.CheckSubnet(want, m.pool, used)
	} else {
		got, err = netns.AllocateSubnet(m.pool, m.bits, used)
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	m.subnets[owner] = got
	return got, nil
}

func (m *modelSubnets) Release(_ context.Context, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subnets, owner)
	return nil
}

func (m *modelSubnets) List(context.Context) ([]netns.Used, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []netns.Used
	for o, p := range m.subnets {
		out = append(out, netns.Used{Prefix: p, Owner: o})
	}
	slices.SortFunc(out, func(a, b netns.Used) int { return strings.Compare(a.Owner, b.Owner) })
	return out, nil
}
