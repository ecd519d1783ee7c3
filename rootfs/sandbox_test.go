package rootfs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/rootfs"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if err := oci.BecomeSubreaper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	oci.Reap()
	os.Exit(code)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sandboxEnv is a busybox lower layer, a runsc root and a cgroup parent.
type sandboxEnv struct {
	t      *testing.T
	rt     oci.Runtime
	dir    string
	lower  string
	cgroup string
}

func newSandboxEnv(t *testing.T) *sandboxEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root")
	}
	if _, err := exec.LookPath("runsc"); err != nil {
		testenv.Missing(t, "runsc not installed (hack/setup.sh)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testenv.Missing(t, "busybox-static not installed")
	}
	dir, err := os.MkdirTemp("", "rfs-")
	if err != nil {
		t.Fatal(err)
	}
	e := &sandboxEnv{t: t, dir: dir, lower: filepath.Join(dir, "lower"), cgroup: "/pinacle-test-" + randHex(4)}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "data"} {
		os.MkdirAll(filepath.Join(e.lower, d), 0o755)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.lower, "bin/busybox"), bb, 0o755)
	for _, a := range []string{"sh", "cat", "dd", "echo", "sleep", "rm", "sync", "df"} {
		os.Symlink("busybox", filepath.Join(e.lower, "bin", a))
	}
	os.WriteFile(filepath.Join(e.lower, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	root := filepath.Join(dir, "r")
	e.rt, err = oci.New(oci.WithRoot(root), oci.WithNetwork(oci.NetworkNone))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if sts, _ := e.rt.List(ctx); len(sts) > 0 {
			t.Errorf("leak: containers %v", sts)
			for _, s := range sts {
				e.rt.Delete(ctx, s.ID, true)
			}
		}
		if err := oci.RemoveCgroup(e.cgroup); err != nil {
			t.Error(err)
		}
		oci.ReleaseRoot(root)
		oci.Reap()
		b, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(b), dir) {
			t.Errorf("leak: mounts under %s", dir)
		}
		if l := rootfs.LoopDevices(dir); len(l) > 0 {
			t.Errorf("leak: loop devices %v", l)
		}
		os.RemoveAll(dir)
	})
	return e
}

// run runs sh -c script in a fresh sandbox on the pod's rootfs, then
// deletes the sandbox, and returns its exit code and stdout.
func (e *sandboxEnv) run(ctx context.Context, r *rootfs.Rootfs, pod, script string) (int, string) {
	e.t.Helper()
	id := pod + "-" + randHex(2)
	bundle := filepath.Join(e.dir, "bundle-"+id)
	if _, err := oci.NewBundle(bundle, oci.SpecOptions{
		Args: []string{"/bin/sh", "-c", script}, RootPath: r.Path,
		CgroupsPath: e.cgroup + "/" + id, Network: oci.NetworkNone,
	}); err != nil {
		e.t.Fatal(err)
	}
	// O_APPEND: stdout and stderr share the file without clobbering.
	out, err := os.OpenFile(filepath.Join(e.dir, id+".out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer out.Close()
	ex, err := e.rt.Run(ctx, id, bundle, oci.CreateOpts{Stdout: out, Stderr: out})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.rt.Delete(ctx, id, true); err != nil {
		e.t.Fatal(err)
	}
	b, _ := os.ReadFile(out.Name())
	return ex.Code, strings.TrimSpace(string(b))
}

func TestSandboxWritesPersistAcrossRecreate(t *testing.T) {
	e := newSandboxEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pod := filepath.Join(e.dir, "pod")
	r, err := rootfs.Mount(ctx, []string{e.lower}, pod, rootfs.Options{StorageBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer rootfs.Remove(ctx, pod)
	if code, out := e.run(ctx, r, "p1", "echo persisted > /data/f && rm /bin/dd && echo ok"); code != 0 || out != "ok" {
		t.Fatalf("first sandbox: %d %q", code, out)
	}
	// Recreate the sandbox on the same mount, then after a full remount.
	if code, out := e.run(ctx, r, "p1", "cat /data/f; [ -e /bin/dd ] || echo dd-gone"); code != 0 || out != "persisted\ndd-gone" {
		t.Fatalf("second sandbox: %d %q", code, out)
	}
	if err := rootfs.Unmount(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if r, err = rootfs.Mount(ctx, []string{e.lower}, pod, rootfs.Options{StorageBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(ctx, r, "p1", "cat /data/f"); code != 0 || out != "persisted" {
		t.Fatalf("after remount: %d %q", code, out)
	}
}

func TestSandboxStorageCapENOSPC(t *testing.T) {
	e := newSandboxEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	podA, podB := filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")
	ra, err := rootfs.Mount(ctx, []string{e.lower}, podA, rootfs.Options{StorageBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer rootfs.Remove(ctx, podA)
	rb, err := rootfs.Mount(ctx, []string{e.lower}, podB, rootfs.Options{StorageBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer rootfs.Remove(ctx, podB)
	code, out := e.run(ctx, ra, "a", "dd if=/dev/zero of=/data/big bs=1M count=64 && sync")
	if code == 0 || !strings.Contains(out, "No space left on device") {
		t.Fatalf("dd of 64 MiB into a 32 MiB pod: exit %d %q, want ENOSPC", code, out)
	}
	code, out = e.run(ctx, rb, "b", "dd if=/dev/zero of=/data/ok bs=1M count=8 && sync && echo fine")
	if code != 0 || !strings.HasSuffix(out, "fine") {
		t.Fatalf("the other pod is affected: %d %q", code, out)
	}
}
