package pods

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/portfwd"
)

// idleRig is a rig whose node-wide idle timeout is a minute; the sweeps
// are called with the time they should believe it is.
func idleRig(t *testing.T) *rig {
	r := newRig(t)
	r.m.Close()
	r.cfg.IdleTimeout = time.Minute
	r.start()
	return r
}

func TestIdleHibernates(t *testing.T) {
	r := idleRig(t)
	r.mustCreate("web")
	marks := map[string]*idleMark{}
	now := time.Now()
	r.m.idleSweep(marks, now)
	r.m.idleSweep(marks, now.Add(30*time.Second))
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s after 30s idle", p.State)
	}
	r.m.idleSweep(marks, now.Add(2*time.Minute))
	r.waitState("web", lifecycle.Hibernated)
	if !r.hasEvent("web", "IdleTimeout") {
		t.Error("no IdleTimeout event")
	}
}

func TestIdleActivityKeepsAwake(t *testing.T) {
	r := idleRig(t)
	r.mustCreate("web")
	marks := map[string]*idleMark{}
	now := time.Now()
	r.m.idleSweep(marks, now)
	// An open exec session.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.m.Exec(ctx, "web", api.ExecRequest{Args: []string{"block"}})
	}()
	poll(t, "the exec session open", func() bool { open, _ := r.m.execs.activity("web"); return open })
	r.m.idleSweep(marks, now.Add(2*time.Minute))
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s with an exec session open", p.State)
	}
	cancel()
	<-done
	// A service touched the activity file 90s in.
	f := filepath.Join(r.m.runDir("web"), ActivityFile)
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	touched := now.Add(90 * time.Second)
	if err := os.Chtimes(f, touched, touched); err != nil {
		t.Fatal(err)
	}
	// The session ended just now: a minute from now, then the touch
	// 90s in, keep it awake at those times.
	r.m.idleSweep(marks, time.Now().Add(30*time.Second))
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s half a minute after its exec session ended", p.State)
	}
}

func TestIdleTimeoutOfTheSpecWins(t *testing.T) {
	r := idleRig(t)
	spec := podSpec("web")
	spec.IdleTimeout = podspec.Duration{Duration: 5 * time.Minute}
	if _, err := r.m.Create(context.Background(), api.CreateRequest{Spec: spec, Wait: true}); err != nil {
		t.Fatal(err)
	}
	marks := map[string]*idleMark{}
	now := time.Now()
	r.m.idleSweep(marks, now)
	r.m.idleSweep(marks, now.Add(2*time.Minute))
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s after 2m with a 5m idle timeout", p.State)
	}
	r.m.idleSweep(marks, now.Add(6*time.Minute))
	r.waitState("web", lifecycle.Hibernated)
}

// TestIdleConnectionsKeepAwake: a connection waiting for the pod (its
// wake or the dial to it) and a relayed one that moved bytes lately are
// activity, whatever the counters say.
func TestIdleConnectionsKeepAwake(t *testing.T) {
	r := idleRig(t)
	r.mustCreate("web")
	marks := map[string]*idleMark{}
	now := time.Now()
	r.m.idleSweep(marks, now)
	r.h.setStats(portfwd.Stats{Pods: []portfwd.PodStats{{PodID: "web", Counters: portfwd.Counters{ConnsActive: 1, ConnsPending: 1}}}})
	r.m.idleSweep(marks, now.Add(2*time.Minute))
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s with a connection waiting for it", p.State)
	}
	r.h.setStats(portfwd.Stats{Pods: []portfwd.PodStats{{PodID: "web", Counters: portfwd.Counters{ConnsActive: 1}, LastActive: now.Add(110 * time.Second)}}})
	r.m.idleSweep(marks, now.Add(150*time.Second))
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s 40s after its relayed connection moved a byte", p.State)
	}
	r.m.idleSweep(marks, now.Add(200*time.Second))
	r.waitState("web", lifecycle.Hibernated)
}

// TestIdleRecheckedBeforeHibernate: activity between the sweep's look
// and the hibernate (which waits for the pod's lock) calls it off.
func TestIdleRecheckedBeforeHibernate(t *testing.T) {
	r := idleRig(t)
	r.mustCreate("web")
	marks := map[string]*idleMark{}
	now := time.Now()
	r.m.idleSweep(marks, now)
	unlock := r.m.lock("web")
	r.m.idleSweep(marks, now.Add(2*time.Minute))
	refs := func() int {
		r.m.mu.Lock()
		defer r.m.mu.Unlock()
		if l := r.m.locks["web"]; l != nil {
			return l.refs
		}
		return 0
	}
	poll(t, "the idle hibernate waiting for the pod's lock", func() bool { return refs() == 2 })
	// A connection arrives while it waits.
	r.h.setStats(portfwd.Stats{Pods: []portfwd.PodStats{{PodID: "web", Counters: portfwd.Counters{ConnsTotal: 1, ConnsActive: 1, ConnsPending: 1}}}})
	unlock()
	poll(t, "the idle hibernate done", func() bool { return refs() == 0 })
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Fatalf("pod %s: hibernated with a connection waiting for it", p.State)
	}
	if r.hasEvent("web", "IdleTimeout") {
		t.Error("an IdleTimeout event for a hibernate called off")
	}
}

// TestIdleCalledOffAsThePortsStepAside: a connection that comes after the
// last look, as the ports step aside for the hibernate, calls it off: the
// pod keeps running, with no checkpoint and its ports running again.
func TestIdleCalledOffAsThePortsStepAside(t *testing.T) {
	r := idleRig(t)
	r.mustCreate("web")
	marks := map[string]*idleMark{}
	now := time.Now()
	r.m.idleSweep(marks, now)
	r.h.mu.Lock()
	r.h.onStepAside = func() {
		r.h.setStats(portfwd.Stats{Pods: []portfwd.PodStats{{PodID: "web", Counters: portfwd.Counters{ConnsTotal: 1}}}})
	}
	r.h.mu.Unlock()
	r.m.idleSweep(marks, now.Add(2*time.Minute))
	poll(t, "the hibernate called off", func() bool { return r.hasEvent("web", "IdleHibernateCalledOff") })
	poll(t, "the pod running", func() bool { return r.record("web").State == lifecycle.Running })
	if r.hasEvent("web", "HibernateFailed") {
		t.Error("a called-off idle hibernate reported as failed")
	}
	log := r.h.log()
	if slices.Contains(log, "runtime.checkpoint") {
		t.Errorf("checkpointed though the hibernate was called off: %v", log)
	}
	i := slices.Index(log, "ports.setstate.hibernated")
	if i < 0 || !slices.Contains(log[i:], "ports.setstate.running") {
		t.Errorf("calls %v: want the ports hibernated, then running again", log)
	}
	// Still idle at the next look, with no new activity: it hibernates.
	r.h.mu.Lock()
	r.h.onStepAside = nil
	r.h.mu.Unlock()
	r.m.idleSweep(marks, now.Add(5*time.Minute)) // a new mark: the connection counted
	r.m.idleSweep(marks, now.Add(7*time.Minute))
	r.waitState("web", lifecycle.Hibernated)
}
