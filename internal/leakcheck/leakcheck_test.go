package leakcheck

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

func TestDetectsMountLeak(t *testing.T) {
	testenv.RequireRoot(t)
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

// A command the check relies on that fails must fail the check: with a
// broken iptables-save, "no rule leaked" would be a lie.
func TestFailingCommandIsAnError(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	before := Take(ctx, "pnleak")
	if err := before.Err(); err != nil {
		t.Fatalf("a healthy host: %v", err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "iptables-save"), []byte("#!/bin/sh\necho 'broken on purpose' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	s := Take(ctx, "pnleak")
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "iptables-save") || !strings.Contains(err.Error(), "broken on purpose") {
		t.Fatalf("Err() = %v, want the failing iptables-save and its stderr", err)
	}
	if err := Check(ctx, before, time.Second, "pnleak"); err == nil || !strings.Contains(err.Error(), "iptables-save") {
		t.Fatalf("Check with a failing iptables-save = %v, want an error naming it", err)
	}
	if err := Check(ctx, s, time.Second, "pnleak"); err == nil {
		t.Fatal("Check from a snapshot that could not be taken passed")
	}
}

func TestFindsCgroupThreeLevelsDeep(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	old := cgroupRoot
	cgroupRoot = t.TempDir()
	t.Cleanup(func() { cgroupRoot = old })
	// A name of this test's own: the host's real pinacle resources may
	// come and go meanwhile (other tests run).
	name := fmt.Sprintf("pnleak-cg-%d", os.Getpid())
	if err := os.MkdirAll(filepath.Join(cgroupRoot, "memory", name), 0o755); err != nil {
		t.Fatal(err)
	}
	before := Take(ctx, name)
	deep := filepath.Join(cgroupRoot, "memory", name, "pod1", "inner")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Check(ctx, before, 200*time.Millisecond, name)
	if err == nil || !strings.Contains(err.Error(), "cgroup: "+deep) {
		t.Fatalf("Check = %v, want the leaked cgroup %s", err, deep)
	}
	if err := os.RemoveAll(filepath.Join(cgroupRoot, "memory", name, "pod1")); err != nil {
		t.Fatal(err)
	}
	if err := Check(ctx, before, 2*time.Second, name); err != nil {
		t.Fatal(err)
	}
}

func TestFindsLeakedProcess(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	marker := fmt.Sprintf("pnleak-%d", os.Getpid())
	p := Probe{Filter: []string{marker}, Procs: []string{marker}}
	before := p.Take(ctx)
	cmd := exec.Command("sh", "-c", "sleep 1000; :", marker)
	// Its own process group, killed whole: killing only sh would leave
	// its sleep behind, a leak of the leak check's own test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t.Cleanup(func() { _ = kill(); _ = cmd.Wait() })
	err := p.Check(ctx, before, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("process: %d sh -c", cmd.Process.Pid)) {
		t.Fatalf("Check = %v, want the leaked process %d", err, cmd.Process.Pid)
	}
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := p.Check(ctx, before, 2*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestFindsLeftFiles(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "data")
	p := Probe{Filter: []string{"pnleak-none"}, Roots: []string{root}}
	before := p.Take(ctx) // the root does not exist yet: nothing there
	left := filepath.Join(root, "pods", "p1", "storage.img")
	if err := os.MkdirAll(filepath.Dir(left), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, before, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "file: "+left) {
		t.Fatalf("Check = %v, want the file left behind", err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, before, 2*time.Second); err != nil {
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
