package storeadapt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/leakcheck"
	"github.com/pinacle/pinacle-node/netns"
)

func requireRootCNI(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (network namespaces, iptables)")
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat("/opt/cni/bin/" + p); err != nil {
			testenv.Missing(t, "CNI plugin %s missing in /opt/cni/bin (run hack/setup.sh)", p)
		}
	}
	if _, err := exec.LookPath("iptables-restore"); err != nil {
		testenv.Missing(t, "iptables-restore missing")
	}
}

// TestNetnsOnBolt runs a real netns manager on the bbolt subnet store: the
// subnets Setup uses are the store's, a custom subnet clashing with a pod
// names it, a manager restarted on the reopened store tears down from its
// own records and releases the store's reservations, and nothing is left
// on the host.
func TestNetnsOnBolt(t *testing.T) {
	requireRootCNI(t)
	ctx := context.Background()
	b := make([]byte, 3)
	rand.Read(b)
	r := hex.EncodeToString(b)
	bridge, chain, nsPrefix := "s"+r[:4], "PSA"+strings.ToUpper(r), "psa-"+r+"-"
	before := leakcheck.Take(ctx, bridge, chain, nsPrefix)
	t.Cleanup(func() {
		if err := leakcheck.Check(ctx, before, 10*time.Second, bridge, chain, nsPrefix); err != nil {
			t.Error(err)
		}
	})

	pool := pfx("10.214.16.0/24")
	st, path := boltTemp(t)
	createPods(t, st, "a", "b", "c")
	stateDir := t.TempDir()
	newManager := func() netns.Manager {
		sub, err := SubnetStore(st, pool, 28)
		if err != nil {
			t.Fatal(err)
		}
		m, err := netns.New(netns.WithStateDir(stateDir), netns.WithPool(pool, 28), netns.WithSubnetStore(sub),
			netns.WithNames(bridge, chain, nsPrefix),
			netns.WithHostDNS(func() (netns.DNS, error) {
				return netns.DNS{Nameservers: []netip.Addr{netip.MustParseAddr("10.214.255.53")}}, nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			pods, _ := m.List(ctx)
			for _, p := range pods {
				if err := m.Teardown(ctx, p.PodID); err != nil {
					t.Errorf("cleanup teardown %s: %v", p.PodID, err)
				}
			}
			if err := m.RemoveNodeRules(ctx); err != nil {
				t.Errorf("cleanup node rules: %v", err)
			}
		})
		return m
	}
	m := newManager()
	a, err := m.Setup(ctx, netns.Spec{PodID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	bAtt, err := m.Setup(ctx, netns.Spec{PodID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.ListSubnets(ctx)
	if err != nil || len(list) != 2 || list[0].PodID != "a" || list[0].Prefix != a.Subnet || list[1].Prefix != bAtt.Subnet {
		t.Fatalf("store holds %+v (%v); Setup gave a %s, b %s", list, err, a.Subnet, bAtt.Subnet)
	}
	if !pool.Contains(a.Subnet.Addr()) || a.Subnet.Overlaps(bAtt.Subnet) {
		t.Fatalf("subnets %s and %s", a.Subnet, bAtt.Subnet)
	}
	_, err = m.Setup(ctx, netns.Spec{PodID: "c", Subnet: netip.PrefixFrom(a.Subnet.Addr(), 29)})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod a") {
		t.Fatalf("custom subnet inside pod a's = %v, want conflict naming pod a", err)
	}

	// A node restart: the state store reopens, a new manager tears down.
	st.Close()
	st = boltAt(t, path)
	m = newManager()
	for _, id := range []string{"a", "b"} {
		if err := m.Teardown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if list, err := st.ListSubnets(ctx); err != nil || len(list) != 0 {
		t.Fatalf("after teardown the store holds %+v (%v)", list, err)
	}
}
