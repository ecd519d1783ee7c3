package pods

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

func (r *rig) mustHibernate(id string) {
	r.t.Helper()
	p, err := r.m.Hibernate(context.Background(), id)
	if err != nil {
		r.t.Fatalf("hibernate: %v", err)
	}
	if p.State != lifecycle.Hibernated {
		r.t.Fatalf("hibernate: state %s (%s)", p.State, p.Reason)
	}
}

func TestHibernateAndWake(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.h.reset()
	r.mustHibernate("web")
	want := []string{"ports.setstate.hibernated", "runtime.checkpoint", "runtime.delete"}
	if calls := r.h.log(); !slices.Equal(calls, want) {
		t.Fatalf("hibernate did %v, want %v", calls, want)
	}
	if r.rt.alive("web") {
		t.Fatal("sandbox left after hibernate")
	}
	if r.m.checkpointed("web") == nil {
		t.Fatal("no complete checkpoint")
	}
	if !r.hasEvent("web", "Hibernated") {
		t.Error("no Hibernated event")
	}
	// Idempotent.
	r.mustHibernate("web")
	r.h.reset()
	p, err := r.m.Wake(context.Background(), "web")
	if err != nil || p.State != lifecycle.Running {
		t.Fatalf("wake: %v %+v", err, p)
	}
	want = []string{"net.restoreaddr", "runtime.restore", "ports.start"}
	if calls := r.h.log(); !slices.Equal(calls, want) {
		t.Fatalf("wake did %v, want %v", calls, want)
	}
	if _, err := os.Stat(r.m.checkpointDir("web")); !errors.Is(err, os.ErrNotExist) || r.m.checkpointed("web") != nil {
		t.Errorf("checkpoint left after the wake: %v", err)
	}
	if !r.hasEvent("web", "Woke") {
		t.Error("no Woke event")
	}
	// The restored sandbox is watched: its death is seen.
	r.rt.crash("web")
	r.waitState("web", lifecycle.Running)
	poll(t, "the death of the restored sandbox seen", func() bool { return r.hasEvent("web", "SandboxDied") })
}

func TestHibernateFailureKeepsRunning(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.h.fail("runtime.checkpoint", errors.New("checkpoint broke"))
	r.h.reset()
	if _, err := r.m.Hibernate(context.Background(), "web"); err == nil {
		t.Fatal("hibernate succeeded")
	}
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s after a failed hibernate", p.State)
	}
	want := []string{"ports.setstate.hibernated", "runtime.checkpoint!", "ports.setstate.running"}
	if calls := r.h.log(); !slices.Equal(calls, want) {
		t.Fatalf("failed hibernate did %v, want %v", calls, want)
	}
	if !r.rt.alive("web") || !r.hasEvent("web", "HibernateFailed") {
		t.Fatal("sandbox gone or no HibernateFailed event")
	}
	if _, err := os.Stat(r.m.checkpointDir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial checkpoint left: %v", err)
	}
}

func TestWakeRestoreFailureColdStarts(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.mustHibernate("web")
	r.h.fail("runtime.restore", errors.New("restore broke"))
	r.h.reset()
	p, err := r.m.Wake(context.Background(), "web")
	if err != nil || p.State != lifecycle.Running {
		t.Fatalf("wake: %v %+v", err, p)
	}
	calls := r.h.log()
	i := slices.Index(calls, "runtime.restore!")
	if i < 0 || !slices.Contains(calls[i:], "net.teardown") || !slices.Contains(calls[i:], "runtime.create") {
		t.Fatalf("no cold start after the failed restore: %v", calls)
	}
	if !r.hasEvent("web", "RestoreFailed") {
		t.Error("no RestoreFailed event")
	}
	if r.m.checkpointed("web") != nil {
		t.Error("checkpoint kept after the cold start")
	}
}

func TestHibernateClosesExecSessions(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	done := make(chan error, 1)
	go func() {
		_, err := r.m.Exec(context.Background(), "web", api.ExecRequest{Args: []string{"block"}})
		done <- err
	}()
	poll(t, "the exec session open", func() bool { open, _ := r.m.execs.activity("web"); return open })
	r.mustHibernate("web")
	select {
	case <-done:
	default:
		t.Fatal("exec session still open after hibernate")
	}
	if !r.hasEvent("web", "SessionsClosed") {
		t.Error("no SessionsClosed event")
	}
	// An exec wakes a hibernated pod.
	if _, err := r.m.Exec(context.Background(), "web", api.ExecRequest{Args: []string{"true"}}); err != nil {
		t.Fatalf("exec in a hibernated pod: %v", err)
	}
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s after an exec woke it", p.State)
	}
}

func TestStartWakesAndStopDiscards(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.mustHibernate("web")
	r.h.reset()
	if p, err := r.m.Start(context.Background(), "web"); err != nil || p.State != lifecycle.Running {
		t.Fatalf("start of a hibernated pod: %v %+v", err, p)
	}
	if !slices.Contains(r.h.log(), "runtime.restore") {
		t.Fatalf("start did not restore: %v", r.h.log())
	}
	r.mustHibernate("web")
	if p, err := r.m.Stop(context.Background(), "web"); err != nil || p.State != lifecycle.Stopped {
		t.Fatalf("stop of a hibernated pod: %v %+v", err, p)
	}
	if _, err := os.Stat(r.m.checkpointDir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkpoint kept by a stopped pod: %v", err)
	}
}

func TestRecoverInterruptedHibernate(t *testing.T) {
	t.Run("sandbox still running", func(t *testing.T) {
		r := newRig(t)
		r.mustCreate("web")
		r.applyOp("web", lifecycle.OpHibernate)
		r.restart()
		if p := r.record("web"); p.State != lifecycle.Running {
			t.Fatalf("pod %s", p.State)
		}
		if !r.rt.alive("web") || !r.hasEvent("web", "HibernateInterrupted") {
			t.Fatal("sandbox gone or no event")
		}
	})
	t.Run("checkpoint complete", func(t *testing.T) {
		r := newRig(t)
		r.mustCreate("web")
		r.mustHibernate("web")
		r.m.Close()
		r.transition("web", lifecycle.Stopping, lifecycle.Stopped, lifecycle.Starting, lifecycle.Running)
		r.applyOp("web", lifecycle.OpHibernate) // as if killed after the checkpoint
		r.restart()
		if p := r.record("web"); p.State != lifecycle.Hibernated {
			t.Fatalf("pod %s", p.State)
		}
		if !slices.Contains(r.h.log(), "ports.setstate.hibernated") {
			t.Fatalf("ports not hibernated: %v", r.h.log())
		}
	})
	t.Run("state says running, process gone", func(t *testing.T) {
		// runsc's state file outlives a sandbox killed while the node was
		// away: its word alone must not keep a pod "running" on nothing.
		r := newRig(t)
		r.mustCreate("web")
		r.applyOp("web", lifecycle.OpHibernate)
		r.rt.mu.Lock()
		r.rt.pids = map[string]int{"web": deadPid(t)}
		r.rt.mu.Unlock()
		r.restart()
		r.waitState("web", lifecycle.Running)
		if r.hasEvent("web", "HibernateInterrupted") || !r.hasEvent("web", "HibernateLost") || !slices.Contains(r.h.log(), "runtime.create") {
			t.Fatalf("a dead sandbox was taken for running: calls %v", r.h.log())
		}
	})
	t.Run("checkpoint unfinished", func(t *testing.T) {
		r := newRig(t)
		r.mustCreate("web")
		r.applyOp("web", lifecycle.OpHibernate)
		r.rt.crash("web") // stopped, and no mark
		r.restart()
		r.waitState("web", lifecycle.Running)
		if !r.hasEvent("web", "HibernateLost") || !slices.Contains(r.h.log(), "runtime.create") {
			t.Fatalf("no cold start: %v", r.h.log())
		}
	})
}

func TestRecoverInterruptedWake(t *testing.T) {
	for _, restored := range []bool{false, true} {
		t.Run(map[bool]string{false: "before the restore", true: "after the restore"}[restored], func(t *testing.T) {
			r := newRig(t)
			r.mustCreate("web")
			r.mustHibernate("web")
			r.applyOp("web", lifecycle.OpWake)
			if restored {
				r.rt.mu.Lock()
				r.rt.sandboxes["web"] = make(chan struct{})
				r.rt.mu.Unlock()
			}
			r.restart()
			r.waitState("web", lifecycle.Running)
			calls := r.h.log()
			if restored == slices.Contains(calls, "runtime.restore") {
				t.Fatalf("restored %v, wake did %v", restored, calls)
			}
			if restored == slices.Contains(calls, "net.restoreaddr") {
				t.Fatalf("address put back on a restored sandbox's eth0: %v", calls)
			}
			if r.m.checkpointed("web") != nil {
				t.Error("checkpoint left")
			}
		})
	}
}

func TestHibernateCrashPoints(t *testing.T) {
	want := map[string][]string{
		"hibernate": {"hibernate:sessions", "hibernate:sync", "hibernate:ports", "hibernate:watch", "hibernate:checkpoint", "hibernate:sandbox"},
		"wake":      {"wake:network", "wake:rootfs", "wake:restore", "wake:forward", "wake:watch", "wake:cleanup"},
	}
	for op, w := range want {
		if got := CrashPoints[op]; !slices.Equal(got, w) {
			t.Errorf("CrashPoints[%s] = %v, want %v", op, got, w)
		}
	}
}

// After the machine restarted, the namespace and the rootfs mount are
// gone: the wake makes them again (same address) and restores.
func TestWakeAfterMachineRestart(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.mustHibernate("web")
	var st podStatus
	if err := json.Unmarshal(r.record("web").Status, &st); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(st.NetnsPath); err != nil {
		t.Fatal(err)
	}
	if err := r.rfs.Unmount(context.Background(), r.m.podDir("web")); err != nil {
		t.Fatal(err)
	}
	r.restart()
	p, err := r.m.Wake(context.Background(), "web")
	if err != nil || p.State != lifecycle.Running {
		t.Fatalf("wake: %v %+v", err, p)
	}
	want := []string{"net.teardown", "net.setup", "net.restoreaddr", "image.rootfs", "rootfs.mount", "runtime.restore", "ports.start"}
	if calls := r.h.after("ports.setstate.hibernated", want...); !slices.Equal(calls, want) {
		t.Fatalf("wake did %v, want %v", r.h.log(), want)
	}
	if r.hasEvent("web", "RestoreFailed") {
		t.Error("restore failed")
	}
}

// A wake the forwarder asks for has the ports running (rules back) by the
// time it returns the address, and asks runsc for no state.
func TestWakeForConnection(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.mustHibernate("web")
	r.h.reset()
	ip, err := r.m.WakeForConnection(context.Background(), "web")
	if err != nil || ip.String() != "10.88.0.2" {
		t.Fatalf("WakeForConnection = %v, %v", ip, err)
	}
	want := []string{"net.restoreaddr", "runtime.restore", "ports.start"}
	if calls := r.h.log(); !slices.Equal(calls, want) {
		t.Fatalf("wake for a connection did %v, want %v", calls, want)
	}
	// Running already: the address at once, nothing done.
	r.h.reset()
	if ip, err := r.m.WakeForConnection(context.Background(), "web"); err != nil || !ip.IsValid() || len(r.h.log()) != 0 {
		t.Fatalf("WakeForConnection of a running pod = %v, %v; did %v", ip, err, r.h.log())
	}
}

// deadPid is the PID of a process that ran and was reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}
