package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// sleeper creates and starts a container running sleep.
func (e *testEnv) sleeper(mod func(*SpecOptions)) string {
	e.t.Helper()
	ctx := e.ctx()
	id := e.id("s")
	if err := e.rt.Create(ctx, id, e.bundle(id, mod, "/bin/sleep", "1000"), CreateOpts{}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = e.rt.Delete(ctx, id, true) })
	if err := e.rt.Start(ctx, id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestExec(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.sleeper(func(o *SpecOptions) { o.Env = []string{"FROM_SPEC=1"} })
	code, err := e.rt.Exec(ctx, id, ExecOpts{Args: []string{"/bin/sh", "-c", "exit 42"}})
	if err != nil || code != 42 {
		t.Fatalf("exec exit: %d %v, want 42", code, err)
	}
	out := e.outFile("exec.out")
	code, err = e.rt.Exec(ctx, id, ExecOpts{
		Args:   []string{"/bin/sh", "-c", `echo "$FROM_SPEC $EXTRA $(id -u):$(id -g) $(pwd)"`},
		Env:    []string{"EXTRA=x"},
		User:   "app",
		Cwd:    "/tmp",
		Stdout: out,
	})
	if err != nil || code != 0 {
		t.Fatalf("exec: %d %v", code, err)
	}
	if got := readTrim(t, out.Name()); got != "1 x 1000:1000 /tmp" {
		t.Errorf("exec output %q", got)
	}
	// A missing binary is the process's failure, reported as a runsc error.
	if _, err := e.rt.Exec(ctx, id, ExecOpts{Args: []string{"/nonexistent"}}); err == nil {
		t.Error("exec of a missing binary succeeded")
	}
	if _, err := e.rt.Exec(ctx, id, ExecOpts{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty args: %v", err)
	}
}

func TestExecPty(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.sleeper(nil)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 33, Cols: 77}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, ptmx); close(done) }()
	code, err := e.rt.Exec(ctx, id, ExecOpts{
		Args: []string{"/bin/sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo isatty; stty size; exit 3"},
		Tty:  true, Stdin: tty, Stdout: tty, Stderr: tty,
	})
	tty.Close()
	if err != nil || code != 3 {
		t.Fatalf("exec: %d %v", code, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pty output did not end")
	}
	out := buf.String()
	// The pty's line discipline turns \n into \r\n: proof it is a terminal.
	if !strings.Contains(out, "isatty\r\n") || !strings.Contains(out, "33 77") {
		t.Errorf("pty output %q: want a terminal of size 33 77", out)
	}
}

func TestStats(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.sleeper(func(o *SpecOptions) { o.MemoryBytes = 128 << 20; o.PidsLimit = 100 })
	s, err := e.rt.Stats(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats %+v", s)
	if s.CPUUsageNanos == 0 || s.MemoryUsage == 0 || s.Pids == 0 {
		t.Errorf("stats missing usage: %+v", s)
	}
	if !s.CgroupsAvailable || s.MemoryLimit != 128<<20 || s.OOMKills != 0 || s.PidsLimit != 100 {
		t.Errorf("cgroup stats: %+v", s)
	}
}

func TestCheckpointRestore(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("cr")
	out := e.outFile("cr.out")
	// A counter that survives only if memory state is restored.
	b := e.bundle(id, nil, "/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done")
	if err := e.rt.Create(ctx, id, b, CreateOpts{Stdout: out}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.rt.Delete(ctx, id, true) })
	if err := e.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	counter := func() string {
		o := e.outFile("n-" + randHex(2))
		if _, err := e.rt.Exec(ctx, id, ExecOpts{Args: []string{"cat", "/tmp/n"}, Stdout: o}); err != nil {
			t.Fatal(err)
		}
		return readTrim(t, o.Name())
	}
	poll(t, 10*time.Second, func() error {
		if c := counter(); c == "" || c == "1" || c == "2" {
			return errNotYet
		}
		return nil
	})
	img := filepath.Join(e.workdir, "ckpt")
	if err := os.MkdirAll(img, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Checkpoint(ctx, id, CheckpointOpts{ImagePath: img}); err != nil {
		t.Fatal(err)
	}
	st, err := e.rt.State(ctx, id)
	if err != nil || st.Status != StatusStopped {
		t.Fatalf("state after checkpoint: %+v %v", st, err)
	}
	if z := zombieChildren(); len(z) > 0 {
		t.Errorf("zombies after checkpoint: %v", z)
	}
	if err := e.rt.Delete(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Restore(ctx, id, b, RestoreOpts{ImagePath: img, CreateOpts: CreateOpts{Stdout: out}}); err != nil {
		t.Fatal(err)
	}
	st, err = e.rt.State(ctx, id)
	if err != nil || st.Status != StatusRunning {
		t.Fatalf("state after restore: %+v %v", st, err)
	}
	c1 := counter()
	poll(t, 10*time.Second, func() error {
		if counter() == c1 {
			return errNotYet
		}
		return nil
	})
	if err := e.rt.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	ex, err := e.rt.Wait(ctx, id)
	if err != nil || ex.Signal != syscall.SIGKILL {
		t.Errorf("wait after restore+kill: %+v %v", ex, err)
	}
}

func TestOOMReported(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("oom")
	// A shell variable that doubles forever: far past 64 MiB.
	b := e.bundle(id, func(o *SpecOptions) { o.MemoryBytes = 64 << 20 },
		"/bin/sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done")
	if err := e.rt.Create(ctx, id, b, CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	if err := e.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	ex, err := e.rt.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %+v", ex)
	if !ex.OOMKilled {
		t.Errorf("memory hog exit %+v: want OOMKilled", ex)
	}
	if ex.Code == 0 {
		t.Errorf("memory hog exited 0")
	}
}

func TestNoOOMForNormalExit(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("nooom")
	ex, err := e.rt.Run(ctx, id, e.bundle(id, func(o *SpecOptions) { o.MemoryBytes = 64 << 20 }, "/bin/true"), CreateOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	if ex.OOMKilled || ex.Code != 0 {
		t.Errorf("exit %+v", ex)
	}
}

func TestCPUQuota(t *testing.T) {
	t.Run("in-spec", func(t *testing.T) { testCPUQuota(t, false) })
	// Booted unthrottled, the quota applied by Start.
	t.Run("deferred", func(t *testing.T) { testCPUQuota(t, true) })
}

func testCPUQuota(t *testing.T, deferred bool) {
	e := newTestEnv(t)
	ctx := e.ctx()
	v1, _ := cgroupMounts()
	acct, ok := v1["cpuacct"]
	if !ok {
		t.Skip("no cgroup v1 cpuacct controller")
	}
	id := e.id("s")
	cg := e.cgroup + "/" + id
	quotaFile := filepath.Join(v1["cpu"], cg, "cpu.cfs_quota_us")
	if err := e.rt.Create(ctx, id, e.bundle(id, func(o *SpecOptions) { o.CPUs = 0.5; o.DeferCPUQuota = deferred }, "/bin/sleep", "1000"), CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.rt.Delete(ctx, id, true) })
	if deferred {
		if b, _ := os.ReadFile(quotaFile); strings.TrimSpace(string(b)) != "-1" {
			t.Fatalf("deferred: cpu.cfs_quota_us = %q before start, want -1 (unlimited)", b)
		}
	}
	if err := e.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	usage := func() uint64 { return readUint(filepath.Join(acct, cg, "cpuacct.usage")) }
	if q := readUint(quotaFile); q != 50000 {
		t.Fatalf("cpu.cfs_quota_us = %d, want 50000", q)
	}
	// Two busy loops: without the quota they could take both cores.
	if _, err := e.rt.Exec(ctx, id, ExecOpts{Args: []string{"/bin/sh", "-c", "while :; do :; done & while :; do :; done"}, Detach: true}); err != nil {
		t.Fatal(err)
	}
	// Measure only once the loops run: the quota has started throttling.
	poll(t, 10*time.Second, func() error {
		if readKV(filepath.Join(v1["cpu"], cg, "cpu.stat"))["nr_throttled"] == 0 {
			return errNotYet
		}
		return nil
	})
	throttled := func() uint64 { return readKV(filepath.Join(v1["cpu"], cg, "cpu.stat"))["nr_throttled"] }
	u0, n0, t0 := usage(), throttled(), time.Now()
	time.Sleep(2 * time.Second) // a measuring window, not a wait for a condition
	u1, n1, t1 := usage(), throttled(), time.Now()
	cpuStat, _ := os.ReadFile(filepath.Join(v1["cpu"], cg, "cpu.stat"))
	procs, _ := os.ReadFile(filepath.Join(acct, cg, "cgroup.procs"))
	t.Logf("cpu.stat: %s procs: %s", cpuStat, procs)
	frac := float64(u1-u0) / float64(t1.Sub(t0).Nanoseconds())
	t.Logf("CPU use with cpus=0.5: %.2f CPUs, throttled in %d periods", frac, n1-n0)
	// Other work on the host can only take CPU from the loops, so the cap
	// is an upper bound on a loaded machine too. A lower bound on usage
	// would measure the host's load; that the quota kept throttling the
	// loops through the window is what shows they wanted more and the
	// quota, not the host, held them back.
	if frac > 0.75 {
		t.Errorf("CPU use %.2f CPUs, over the 0.5 CPU quota (limit 0.75)", frac)
	}
	if n1 == n0 {
		t.Errorf("the quota never throttled the two busy loops during the window (nr_throttled stayed %d)", n0)
	}
}

// A call whose ctx ends is killed and reports the ctx error.
func TestContextEndsCalls(t *testing.T) {
	e := newTestEnv(t)
	id := e.sleeper(nil)
	for name, f := range map[string]func(ctx context.Context) error{
		"wait": func(ctx context.Context) error { _, err := e.rt.Wait(ctx, id); return err },
		"exec": func(ctx context.Context) error {
			_, err := e.rt.Exec(ctx, id, ExecOpts{Args: []string{"/bin/sleep", "100"}})
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- f(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v, want deadline exceeded", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not return after its ctx ended", name)
		}
		cancel()
	}
	// The container is untouched.
	if st, err := e.rt.State(e.ctx(), id); err != nil || st.Status != StatusRunning {
		t.Errorf("state %+v %v", st, err)
	}
}

// A parent cgroup is removed only once nothing is in it.
func TestRemoveCgroupIfUnused(t *testing.T) {
	e := newTestEnv(t)
	id := e.sleeper(nil) // lives in e.cgroup/<id>
	if err := RemoveCgroupIfUnused(e.cgroup); err != nil {
		t.Fatalf("parent with a running container: %v, want it kept without error", err)
	}
	if len(cgroupDirs(e.cgroup)) == 0 {
		t.Fatal("a parent still in use was removed")
	}
	if err := e.rt.Delete(e.ctx(), id, true); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCgroupIfUnused(e.cgroup); err != nil {
		t.Fatal(err)
	}
	if d := cgroupDirs(e.cgroup); len(d) != 0 {
		t.Errorf("unused parent left in %v", d)
	}
}
