package netns

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Everything the tests create lives in 10.201.0.0/16 (this package's test
// range): pod pools in 10.201.0.0/17 and 10.201.224.0/21-10.201.240.0/21
// (a /21 per manager), test infrastructure in 10.201.128.0/17 below
// 10.201.224.0.
var testSeq atomic.Int32

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (network namespaces, iptables)")
	}
	for _, p := range []string{"bridge", "host-local", "bandwidth"} {
		if _, err := os.Stat("/opt/cni/bin/" + p); err != nil {
			testenv.Missing(t, "CNI plugin %s missing in /opt/cni/bin (run hack/setup.sh)", p)
		}
	}
	for _, b := range []string{"iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(b); err != nil {
			testenv.Missing(t, "%s missing", b)
		}
	}
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

type testEnv struct {
	m    *manager
	n    int32
	pool netip.Prefix
	r    string
}

// newTestManager makes a manager with unique names and its own pool.
func newTestManager(t testing.TB, opts ...Option) *testEnv {
	t.Helper()
	requireRoot(t)
	n := testSeq.Add(1) - 1
	third := n * 8
	if n >= 16 {
		third = 224 + (n-16)*8 // past the infrastructure's 128-207
	}
	if third >= 248 {
		t.Fatal("out of test pools")
	}
	pool := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 201, byte(third), 0}), 21)
	r := randHex(4)
	all := append([]Option{
		WithStateDir(t.TempDir()),
		WithPool(pool, 28),
		WithNames("q"+r[:3], "PNT"+strings.ToUpper(r), "pnt-"+r+"-"),
		WithHostDNS(func() (DNS, error) {
			return DNS{Nameservers: []netip.Addr{netip.MustParseAddr("10.201.255.53")}, Search: []string{"example.test"}}, nil
		}),
	}, opts...)
	mi, err := New(all...)
	if err != nil {
		t.Fatal(err)
	}
	m := mi.(*manager)
	t.Cleanup(func() {
		ctx := context.Background()
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
	return &testEnv{m: m, n: n, pool: pool, r: r}
}

// listenIn opens a TCP listener inside the namespace at nsPath; the socket
// stays in that namespace after the locked goroutine returns ("" = host). It answers
// every connection with "hello\n".
func listenIn(t testing.TB, nsPath, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	if nsPath == "" {
		// The host: any unlocked goroutine runs on a thread in the root
		// ns. (Not /proc/self/ns/net: that is the main thread's, which a
		// locked goroutine may have left in another namespace.)
		l, err = net.Listen("tcp4", addr)
	} else {
		err = ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
			var err error
			l, err = net.Listen("tcp4", addr)
			return err
		})
	}
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, nsPath, err)
	}
	serveHello(t, l)
	return l
}

func serveHello(t testing.TB, l net.Listener) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
}

// hello connects to addr from the namespace at nsPath ("" = the host) and
// expects the greeting. Blocked traffic is rejected, so errors come fast;
// the timeout only bounds a broken setup.
func hello(nsPath, addr string) error {
	do := func() error {
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if line != "hello\n" {
			return fmt.Errorf("got %q", line)
		}
		return nil
	}
	if nsPath == "" {
		return do()
	}
	return ns.WithNetNSPath(nsPath, func(ns.NetNS) error { return do() })
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// runQuiet is for cleanups: failures are expected when already gone.
func runQuiet(name string, args ...string) { exec.Command(name, args...).Run() }
