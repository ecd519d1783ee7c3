package oci

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/procfs"
)

// TestKillStale: a runsc invocation for the pod left by an earlier node
// process is killed, and so are the pod's sandbox and gofer, which runsc
// has no state for; another pod's, and those under another root, are not.
func TestKillStale(t *testing.T) {
	const bin = "/bin/sh"
	rt, err := New(WithBinary(bin), WithRoot("/run/pinacle-test-stale"))
	if err != nil {
		t.Fatal(err)
	}
	r := rt.(*runsc)
	// sh -c 'sleep 60' ARGS...: ARGS become $0.. and the command line
	// looks like runsc's: [argv0, ..., --root=R, ..., id].
	stray := func(argv0 string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Args = append([]string{argv0, "-c", "sleep 60"}, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	target := stray(bin, "--root="+r.root, "run", "--detach", "pstale1")
	other := stray(bin, "--root="+r.root, "run", "--detach", "pother")
	otherRoot := stray(bin, "--root=/run/elsewhere", "run", "pstale1")
	sandbox := stray("runsc-sandbox", "--root="+r.root, "boot", "pstale1")
	gofer := stray("runsc-gofer", "--root="+r.root, "gofer", "--bundle", "/data/pods/pstale1/bundle")
	otherGofer := stray("runsc-gofer", "--root="+r.root, "gofer", "--bundle", "/data/pods/pother/bundle")
	// runsc takes its lock file before it starts the gofer and the
	// sandbox and writes the state after: a runsc killed in between leaves
	// the lock alone, and the container is still not one runsc can load.
	lock := filepath.Join(r.root, "pstale1_sandbox:pstale1.lock")
	otherLock := filepath.Join(r.root, "pother_sandbox:pother.lock")
	for _, f := range []string{lock, otherLock} {
		if err := os.WriteFile(f, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(f) })
	}
	if r.known("pstale1") {
		t.Fatal("a container with only runsc's lock file reads as known: Delete would ask runsc, which cannot load it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.KillStale(ctx, "pstale1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the pod's stale runsc lock file is still there: %v", err)
	}
	if _, err := os.Stat(otherLock); err != nil {
		t.Errorf("another pod's lock file: %v", err)
	}
	for name, c := range map[string]*exec.Cmd{"the stale invocation": target, "the untracked sandbox": sandbox, "its gofer": gofer} {
		if procfs.Alive(c.Process.Pid) {
			t.Errorf("%s for the pod still runs", name)
		}
	}
	for name, c := range map[string]*exec.Cmd{"another pod's": other, "another root's": otherRoot, "another pod's gofer": otherGofer} {
		if !procfs.Alive(c.Process.Pid) {
			t.Errorf("%s process was killed", name)
		}
	}
}
