package pods

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/internal/store"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
	"github.com/pinacle/pinacle-node/templates"
)

// rig is a manager over fakes and a real store in a temporary directory.
type rig struct {
	t      *testing.T
	h      *host
	rt     *fakeRuntime
	images *fakeImages
	rfs    *fakeRootfs
	store  *store.Store
	cfg    Config
	m      *Manager
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	h := newHost()
	st, err := store.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tmpl, _, err := templates.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	layers := filepath.Join(dir, "layer")
	if err := os.MkdirAll(layers, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &rig{
		t: t, h: h, store: st,
		rt:     &fakeRuntime{h: h, sandboxes: map[string]chan struct{}{}},
		images: &fakeImages{h: h, layers: layers, have: true},
		rfs:    &fakeRootfs{h: h, mounted: map[string]bool{}},
	}
	r.cfg = Config{
		DataRoot: filepath.Join(dir, "data"), Store: st, Images: r.images, Runtime: r.rt,
		Net: fakeNet{h, t.TempDir()}, Ports: fakePorts{h}, Templates: tmpl, Rootfs: r.rfs,
		InitBinary: "/proc/self/exe", PodInit: "/proc/self/exe", StopTimeout: time.Second, ReadyTimeout: 10 * time.Second,
	}
	r.start()
	return r
}

// start makes a new manager over the same host and store, as a daemon
// restart does.
func (r *rig) start() {
	r.t.Helper()
	m, err := New(r.cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.m = m
	r.t.Cleanup(m.Close)
}

func podSpec(name string) podspec.Pod {
	return podspec.Pod{
		ID: name, Name: name, BaseImage: "docker.io/fake/img:1",
		Network: podspec.Network{Ports: []podspec.Port{{Name: "app", Internal: 8080}}},
	}
}

func (r *rig) create(name string) (*api.Pod, error) {
	return r.m.Create(context.Background(), api.CreateRequest{Spec: podSpec(name), Wait: true})
}

func (r *rig) mustCreate(name string) *api.Pod {
	r.t.Helper()
	p, err := r.create(name)
	if err != nil {
		r.t.Fatalf("create %s: %v", name, err)
	}
	if p.State != lifecycle.Running {
		r.t.Fatalf("create %s: state %s (%s)", name, p.State, p.Reason)
	}
	return p
}

func (r *rig) record(id string) *store.Pod {
	r.t.Helper()
	p, err := r.store.GetPod(context.Background(), id)
	if err != nil {
		r.t.Fatalf("get %s: %v", id, err)
	}
	return p
}

// poll waits, up to a deadline, for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// undoCalls are the fakes' calls that undo a step.
var undoCalls = []string{"ports.stop", "runtime.delete", "rootfs.unmount", "net.teardown"}

func TestCreateRunsEveryStep(t *testing.T) {
	r := newRig(t)
	p := r.mustCreate("web")
	if p.IP != "10.88.0.2" || len(p.Ports) != 1 || p.Ports[0].External != 30000 {
		t.Fatalf("pod view: ip %q ports %+v", p.IP, p.Ports)
	}
	st, err := readStatus(r.record("web"))
	if err != nil || st.ImageDigest != fakeDigest || st.Image != "docker.io/fake/img:1" || st.NetnsPath == "" {
		t.Fatalf("status %+v %v", st, err)
	}
	calls := r.h.log()
	for _, want := range []string{"net.setup", "image.rootfs", "image.lease", "rootfs.mount", "ports.allocate", "runtime.create", "ports.start"} {
		if !slices.Contains(calls, want) {
			t.Errorf("no %s in %v", want, calls)
		}
	}
	if slices.ContainsFunc(calls, func(c string) bool { return slices.Contains(undoCalls, c) }) {
		t.Errorf("an undo ran on a successful create: %v", calls)
	}
	if _, err := os.Stat(filepath.Join(r.m.bundleDir("web"), "config.json")); err != nil {
		t.Errorf("bundle: %v", err)
	}
}

func TestCreatePullsMissingImage(t *testing.T) {
	r := newRig(t)
	r.images.have = false
	r.mustCreate("web")
	if !slices.Contains(r.h.log(), "image.pull") {
		t.Fatalf("no pull: %v", r.h.log())
	}
	var pulling bool
	_ = r.m.Events(context.Background(), "web", 0, false, func(e api.Event) error {
		pulling = pulling || e.Reason == "Pulling"
		return nil
	})
	if !pulling {
		t.Error("no Pulling event")
	}
}

// TestCreateStepFailure fails each step in turn: the pod ends failed with
// a reason naming the step, and exactly the undos of the steps that
// completed (and of a partial one that failed) ran, in reverse order.
// stepFailure fails one step of a create: through the fake call that
// fails, or through setup.
type stepFailure struct {
	step, call string
	undos      []string // the undo calls expected, in order
	setup      func(t *testing.T, r *rig)
}

func stepFailures() []stepFailure {
	all := []string{"ports.stop", "runtime.delete", "rootfs.unmount", "net.teardown"}
	return []stepFailure{
		{step: "files", setup: func(t *testing.T, r *rig) {
			// The pod's directory is a file: nothing can be made in it.
			if err := os.WriteFile(r.m.podDir("web"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{step: "network", call: "net.setup", undos: []string{"rootfs.unmount"}},
		{step: "image", call: "image.lease", undos: []string{"net.teardown"}},
		{step: "rootfs", call: "rootfs.mount", undos: []string{"net.teardown"}},
		{step: "workspace", undos: []string{"rootfs.unmount", "net.teardown"}, setup: func(t *testing.T, r *rig) {
			r.h.onCreate = nil
			// The mount point of the node's binary cannot be made.
			if err := os.MkdirAll(filepath.Join(r.m.podDir("web"), "rootfs", ".pinacle"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(r.m.podDir("web"), "rootfs", ".pinacle", "bin"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{step: "ports", call: "ports.allocate", undos: []string{"rootfs.unmount", "net.teardown"}},
		{step: "bundle", undos: []string{"rootfs.unmount", "net.teardown"}, setup: func(t *testing.T, r *rig) {
			if err := os.MkdirAll(r.m.podDir("web"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(r.m.configDir("web"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{step: "sandbox", call: "runtime.create", undos: all},
		{step: "forward", call: "ports.start", undos: all},
		{step: "ready", undos: all, setup: func(t *testing.T, r *rig) {
			r.h.onCreate = func(bundle string) {
				b, _ := json.Marshal(supervisor.Status{Error: "init: bad config"})
				_ = os.WriteFile(filepath.Join(filepath.Dir(bundle), "run", "status.json"), b, 0o644)
			}
		}},
	}
}

func TestCreateStepFailure(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range stepFailures() {
		t.Run(c.step, func(t *testing.T) {
			r := newRig(t)
			if c.call != "" {
				r.h.fail(c.call, boom)
			}
			if c.setup != nil {
				c.setup(t, r)
			}
			spec := podSpec("web")
			if c.step == "ready" {
				spec.Services = []podspec.Service{{Name: "app", Command: []string{"true"}}}
			}
			_, err := r.m.Create(context.Background(), api.CreateRequest{Spec: spec, Wait: true})
			if err == nil {
				t.Fatal("create succeeded")
			}
			p := r.record("web")
			if p.State != lifecycle.Failed || !strings.HasPrefix(p.Reason, c.step+": ") {
				t.Fatalf("pod %s, reason %q; want failed, reason naming %s", p.State, p.Reason, c.step)
			}
			var undos []string
			for _, call := range r.h.log() {
				if slices.Contains(undoCalls, call) {
					undos = append(undos, call)
				}
			}
			if !slices.Equal(undos, c.undos) {
				t.Fatalf("undos %v, want %v (calls %v)", undos, c.undos, r.h.log())
			}
			if r.rt.alive("web") {
				t.Error("a sandbox outlived the failed create")
			}
		})
	}
}

func TestCrashPointsNameEveryStep(t *testing.T) {
	for _, st := range podSteps.list {
		if st.do != nil && !slices.Contains(CrashPoints["create"], "up:"+st.name) {
			t.Errorf("create has no crash point after %s", st.name)
		}
		if st.undo != nil && !slices.Contains(CrashPoints["stop"], "down:"+st.name) {
			t.Errorf("stop has no crash point after %s", st.name)
		}
		if st.release != nil && !slices.Contains(CrashPoints["delete"], "del:"+st.name) {
			t.Errorf("delete has no crash point after %s", st.name)
		}
		if st.join != "" && !slices.ContainsFunc(podSteps.list, func(o step[*unit]) bool { return o.name == st.join }) {
			t.Errorf("step %s joins unknown step %s", st.name, st.join)
		}
	}
}

func TestStop(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.h.reset()
	p, err := r.m.Stop(context.Background(), "web")
	if err != nil || p.State != lifecycle.Stopped {
		t.Fatalf("stop: %v %+v", err, p)
	}
	want := []string{"ports.stop", "runtime.kill", "runtime.delete", "rootfs.unmount", "net.teardown"}
	if got := r.h.log(); !slices.Equal(got, want) {
		t.Fatalf("stop calls %v, want %v", got, want)
	}
	// Idempotent: a stopped pod stops without doing anything.
	r.h.reset()
	if p, err := r.m.Stop(context.Background(), "web"); err != nil || p.State != lifecycle.Stopped {
		t.Fatalf("second stop: %v %+v", err, p)
	}
	if got := r.h.log(); len(got) != 0 {
		t.Fatalf("second stop did %v", got)
	}
	// Started again, it uses exactly the image it was created with.
	r.images.refs = nil
	if p, err := r.m.Start(context.Background(), "web"); err != nil || p.State != lifecycle.Running {
		t.Fatalf("start: %v %+v", err, p)
	}
	if !slices.Equal(r.images.refs, []string{fakeDigest}) {
		t.Fatalf("start looked up %v, want the digest", r.images.refs)
	}
}

func TestStopFailure(t *testing.T) {
	for _, c := range []struct{ call, step string }{
		{"ports.stop", "forward"},
		{"runtime.delete", "sandbox"},
		{"rootfs.unmount", "rootfs"},
		{"net.teardown", "network"},
	} {
		t.Run(c.step, func(t *testing.T) {
			r := newRig(t)
			r.mustCreate("web")
			r.h.reset()
			r.h.fail(c.call, errors.New("boom"))
			if _, err := r.m.Stop(context.Background(), "web"); err == nil {
				t.Fatal("stop succeeded")
			}
			p := r.record("web")
			if p.State != lifecycle.Failed || !strings.Contains(p.Reason, c.step+": ") {
				t.Fatalf("pod %s, reason %q", p.State, p.Reason)
			}
			// Every other undo still ran.
			for _, u := range undoCalls {
				if !slices.Contains(r.h.log(), u) && !slices.Contains(r.h.log(), u+"!") {
					t.Errorf("%s did not run: %v", u, r.h.log())
				}
			}
			// Once the fault is gone, a delete of the failed pod succeeds.
			r.h.fail(c.call, nil)
			if err := r.m.Delete(context.Background(), "web"); err != nil {
				t.Fatalf("delete: %v", err)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.h.reset()
	if err := r.m.Delete(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	want := []string{"ports.stop", "runtime.kill", "runtime.delete", "rootfs.unmount", "net.teardown",
		"ports.release", "rootfs.remove", "image.unlease"}
	if got := r.h.log(); !slices.Equal(got, want) {
		t.Fatalf("delete calls %v, want %v", got, want)
	}
	if _, err := os.Stat(r.m.podDir("web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir left: %v", err)
	}
	if _, err := r.store.GetPod(context.Background(), "web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("record left: %v", err)
	}
	if err := r.m.Delete(context.Background(), "web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second delete: %v, want not found", err)
	}
}

// TestDeleteFailure: a release that fails leaves the pod failed with
// what comes after it (the lease, the files, the record) in place; the
// next delete finishes.
func TestDeleteFailure(t *testing.T) {
	for _, c := range []struct{ call, step string }{
		{"ports.release", "ports"},
		{"rootfs.remove", "rootfs"},
		{"image.unlease", "image"},
		{"net.teardown", "network"},
	} {
		t.Run(c.step, func(t *testing.T) {
			r := newRig(t)
			r.mustCreate("web")
			r.h.fail(c.call, errors.New("boom"))
			if err := r.m.Delete(context.Background(), "web"); err == nil {
				t.Fatal("delete succeeded")
			}
			p := r.record("web")
			if p.State != lifecycle.Failed || !strings.Contains(p.Reason, c.step+": ") {
				t.Fatalf("pod %s, reason %q", p.State, p.Reason)
			}
			if _, err := os.Stat(r.m.podDir("web")); err != nil {
				t.Errorf("pod dir gone with a release undone: %v", err)
			}
			r.h.fail(c.call, nil)
			if err := r.m.Delete(context.Background(), "web"); err != nil {
				t.Fatalf("delete again: %v", err)
			}
			if _, err := r.store.GetPod(context.Background(), "web"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("record left: %v", err)
			}
		})
	}
}

func TestCorruptStatusIsAnEvent(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	if _, err := r.m.Stop(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.UpdatePod(context.Background(), "web", func(p *store.Pod) error {
		p.Status = json.RawMessage(`{"ip": 7}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p, err := r.m.Start(context.Background(), "web"); err != nil || p.State != lifecycle.Running {
		t.Fatalf("start: %v %+v", err, p)
	}
	var seen bool
	_ = r.m.Events(context.Background(), "web", 0, false, func(e api.Event) error {
		seen = seen || e.Reason == "StatusUnreadable"
		return nil
	})
	if !seen {
		t.Error("no StatusUnreadable event")
	}
	if _, err := readStatus(r.record("web")); err != nil {
		t.Errorf("the start did not write a sound status: %v", err)
	}
}
