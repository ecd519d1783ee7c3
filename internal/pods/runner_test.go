package pods

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pinacle/pinacle-node/imagestore"
	"github.com/pinacle/pinacle-node/oci"
)

func newRunner(r *rig) (*Runner, OneOff) {
	runner := &Runner{Images: r.images, Runtime: r.rt, Rootfs: r.rfs}
	return runner, OneOff{ID: "run-1", Dir: filepath.Join(r.t.TempDir(), "run-1"), Image: "docker.io/fake/img:1", Spec: oci.SpecOptions{Args: []string{"true"}}}
}

func TestRunnerRunsAndCleansUp(t *testing.T) {
	r := newRig(t)
	runner, o := newRunner(r)
	var attached, detached bool
	o.Attach = func() (oci.CreateOpts, func(), error) {
		attached = true
		return oci.CreateOpts{}, func() {
			// After the delete, so a pty relay sees its end.
			if !slices.Contains(r.h.log(), "runtime.delete") {
				t.Error("detached before the sandbox was deleted")
			}
			detached = true
		}, nil
	}
	ex, err := runner.Run(context.Background(), o)
	if err != nil || ex.Code != 7 {
		t.Fatalf("run: %+v %v", ex, err)
	}
	want := []string{"image.rootfs", "image.lease", "rootfs.mount", "runtime.run", "runtime.delete", "rootfs.unmount", "rootfs.remove", "image.unlease"}
	if got := r.h.log(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if !attached || !detached {
		t.Errorf("attached %v detached %v", attached, detached)
	}
	if _, err := os.Stat(o.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir left: %v", err)
	}
}

func TestRunnerKeep(t *testing.T) {
	r := newRig(t)
	runner, o := newRunner(r)
	o.Keep = true
	if _, err := runner.Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if calls := r.h.log(); slices.Contains(calls, "rootfs.remove") || !slices.Contains(calls, "rootfs.unmount") || !slices.Contains(calls, "image.unlease") {
		t.Fatalf("calls %v: want unmounted, kept, lease dropped", calls)
	}
	if _, err := os.Stat(o.Dir); err != nil {
		t.Errorf("kept dir: %v", err)
	}
}

func TestRunnerPullsAndFails(t *testing.T) {
	r := newRig(t)
	r.images.have = false
	runner, o := newRunner(r)
	var pulls, done int
	runner.Pulling = func(string) (func(imagestore.Event), func()) {
		pulls++
		return func(imagestore.Event) {}, func() { done++ }
	}
	r.h.fail("runtime.run", errors.New("boom"))
	var warned []error
	runner.Warn = func(err error) { warned = append(warned, err) }
	if _, err := runner.Run(context.Background(), o); err == nil {
		t.Fatal("run succeeded")
	}
	if pulls != 1 || done != 1 {
		t.Errorf("pulls %d, done %d", pulls, done)
	}
	// The failed run's sandbox, rootfs, lease and directory are gone.
	calls := r.h.log()
	for _, c := range []string{"runtime.delete", "rootfs.unmount", "rootfs.remove", "image.unlease"} {
		if !slices.Contains(calls, c) {
			t.Errorf("no %s: %v", c, calls)
		}
	}
	if len(warned) != 0 {
		t.Errorf("warnings: %v", warned)
	}
	if _, err := os.Stat(o.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir left: %v", err)
	}
}
