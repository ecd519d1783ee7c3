package pods

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
)

// restart stops the manager as a daemon exit does and starts a new one
// over the same host and store, then recovers.
func (r *rig) restart() {
	r.t.Helper()
	r.m.Close()
	r.h.reset()
	r.start()
	if err := r.m.Recover(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

// record puts a resolved pod into the store as pending, without
// provisioning it.
func (r *rig) recordPending(name string) {
	r.t.Helper()
	spec, err := r.m.resolve(api.CreateRequest{Spec: podSpec(name)})
	if err != nil {
		r.t.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	if _, err := r.store.CreatePod(context.Background(), store.Pod{ID: name, Name: name, Spec: b}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) transition(id string, to ...lifecycle.State) {
	r.t.Helper()
	for _, s := range to {
		if _, err := r.store.Transition(context.Background(), id, s, ""); err != nil {
			r.t.Fatalf("-> %s: %v", s, err)
		}
	}
}

func (r *rig) applyOp(id string, op lifecycle.Op) {
	r.t.Helper()
	if _, _, err := r.store.ApplyOp(context.Background(), id, op, ""); err != nil {
		r.t.Fatalf("%s: %v", op, err)
	}
}

func (r *rig) waitState(id string, want lifecycle.State) {
	r.t.Helper()
	poll(r.t, "pod "+id+" "+string(want), func() bool {
		p, err := r.store.GetPod(context.Background(), id)
		return err == nil && p.State == want
	})
}

func (r *rig) hasEvent(id, reason string) bool {
	var seen bool
	_ = r.m.Events(context.Background(), id, 0, false, func(e api.Event) error {
		seen = seen || e.Reason == reason
		return nil
	})
	return seen
}

func TestRecoverAdoptsRunning(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.restart()
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s", p.State)
	}
	if calls := r.h.log(); !slices.Equal(calls, []string{"ports.start"}) {
		t.Fatalf("adopting did %v, want only the forwarder back", calls)
	}
	if !r.hasEvent("web", "NodeRestart") {
		t.Error("no adopted event")
	}
	// Adopted, its death is still seen: the pod comes back.
	r.rt.crash("web")
	poll(t, "restart after death", func() bool { return r.hasEvent("web", "RestartPolicy") })
	r.waitState("web", lifecycle.Running)
}

func TestRecoverRunningWhoseSandboxDied(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.m.Close()
	r.rt.mu.Lock()
	delete(r.rt.sandboxes, "web") // gone while the node was away
	r.rt.mu.Unlock()
	r.start()
	if err := r.m.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll(t, "death recorded", func() bool { return r.hasEvent("web", "SandboxDied") })
	poll(t, "pod running again after one restart", func() bool {
		p := r.record("web")
		st, _ := readStatus(p)
		return p.State == lifecycle.Running && st.Restarts == 1
	})
}

func TestRecoverInterruptedStartsAgain(t *testing.T) {
	for _, state := range []lifecycle.State{lifecycle.Provisioning, lifecycle.Starting} {
		t.Run(string(state), func(t *testing.T) {
			r := newRig(t)
			if state == lifecycle.Provisioning {
				r.recordPending("web")
				r.transition("web", lifecycle.Provisioning)
			} else {
				r.mustCreate("web")
				if _, err := r.m.Stop(context.Background(), "web"); err != nil {
					t.Fatal(err)
				}
				r.applyOp("web", lifecycle.OpStart)
			}
			r.restart()
			r.waitState("web", lifecycle.Running)
			calls := r.h.log()
			// Cleaned up first, then brought up from the beginning.
			if i, j := slices.Index(calls, "net.teardown"), slices.Index(calls, "net.setup"); i < 0 || j < i {
				t.Fatalf("calls %v: want teardown before setup", calls)
			}
		})
	}
}

func TestRecoverFinishesStop(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.applyOp("web", lifecycle.OpStop)
	r.restart()
	if p := r.record("web"); p.State != lifecycle.Stopped {
		t.Fatalf("pod %s", p.State)
	}
	if r.rt.alive("web") {
		t.Error("sandbox still there")
	}
}

func TestRecoverFinishesDelete(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.applyOp("web", lifecycle.OpDelete)
	r.restart()
	if _, err := r.store.GetPod(context.Background(), "web"); err == nil {
		t.Fatal("record still there")
	}
	if !slices.Contains(r.h.log(), "image.unlease") {
		t.Errorf("lease not released: %v", r.h.log())
	}
}

func TestRecoverStableStates(t *testing.T) {
	t.Run("stopped", func(t *testing.T) {
		r := newRig(t)
		r.mustCreate("web")
		if _, err := r.m.Stop(context.Background(), "web"); err != nil {
			t.Fatal(err)
		}
		r.restart()
		if p := r.record("web"); p.State != lifecycle.Stopped {
			t.Fatalf("pod %s", p.State)
		}
		if calls := r.h.log(); !slices.Equal(calls, []string{"ports.setstate.not-running"}) {
			t.Fatalf("recovering a stopped pod did %v", calls)
		}
	})
	t.Run("failed with its rootfs mounted", func(t *testing.T) {
		r := newRig(t)
		r.mustCreate("web")
		r.m.Close()
		if _, err := r.store.Transition(context.Background(), "web", lifecycle.Failed, "test"); err != nil {
			t.Fatal(err)
		}
		r.h.reset()
		r.start()
		if err := r.m.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		if r.rt.alive("web") {
			t.Error("sandbox of a failed pod left running")
		}
		if mounted, _ := r.rfs.Mounted(r.m.podDir("web")); mounted {
			t.Error("rootfs of a failed pod left mounted")
		}
	})
	t.Run("pending", func(t *testing.T) {
		r := newRig(t)
		r.recordPending("web")
		r.restart()
		r.waitState("web", lifecycle.Running)
	})
}
