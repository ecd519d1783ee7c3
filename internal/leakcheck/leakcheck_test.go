package leakcheck

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"golang.org/x/sys/unix"
)

func TestDetectsMountLeak(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root to mount")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "leakcheck-mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	before := Take(ctx, dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, before, 200*time.Millisecond, dir); err == nil {
		t.Fatal("Check missed a leaked mount")
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, before, 2*time.Second, dir); err != nil {
		t.Fatal(err)
	}
}

func TestDiff(t *testing.T) {
	a := Snapshot{"link": {"eth0", "lo"}}
	b := Snapshot{"link": {"eth0", "lo", "veth1"}, "netns": {"p1"}}
	d := Diff(a, b)
	if len(d) != 2 || d[0] != "link: veth1" || d[1] != "netns: p1" {
		t.Fatalf("Diff = %v", d)
	}
	if len(Diff(b, a)) != 0 {
		t.Fatal("removals are not leaks")
	}
}
