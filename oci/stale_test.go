package oci

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestKillStale: a runsc invocation for the pod left by an earlier node
// process is killed; one for another pod, one under another root, and a
// sandbox process for the pod are not.
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.KillStale(ctx, "pstale1"); err != nil {
		t.Fatal(err)
	}
	if alive(target.Process.Pid) {
		t.Error("the stale invocation for the pod still runs")
	}
	for name, c := range map[string]*exec.Cmd{"another pod's": other, "another root's": otherRoot, "the sandbox": sandbox} {
		if !alive(c.Process.Pid) {
			t.Errorf("%s process was killed", name)
		}
	}
}
