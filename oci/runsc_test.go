package oci

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func TestRunEchoOutputAndExitCode(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("echo")
	b := e.bundle(id, nil, "/bin/sh", "-c", "echo hello; echo oops >&2; exit 7")
	out, errf := e.outFile("out"), e.outFile("err")
	if err := e.rt.Create(ctx, id, b, CreateOpts{Stdout: out, Stderr: errf}); err != nil {
		t.Fatal(err)
	}
	st, err := e.rt.State(ctx, id)
	if err != nil || st.Status != StatusCreated || st.Pid <= 0 || st.Bundle != b {
		t.Fatalf("state after create: %+v %v", st, err)
	}
	if err := e.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	ex, err := e.rt.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Code != 7 || ex.OOMKilled || ex.Signal != 0 {
		t.Errorf("exit %+v, want code 7", ex)
	}
	if got := readTrim(t, out.Name()); got != "hello" {
		t.Errorf("stdout %q", got)
	}
	if got := readTrim(t, errf.Name()); got != "oops" {
		t.Errorf("stderr %q", got)
	}
	// Wait again: the status is remembered.
	if ex2, err := e.rt.Wait(ctx, id); err != nil || ex2 != ex {
		t.Errorf("second wait %+v %v", ex2, err)
	}
	if err := e.rt.Delete(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.State(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("state after delete: %v, want not found", err)
	}
	if d := cgroupDirs(e.cgroup + "/" + id); len(d) > 0 {
		t.Errorf("cgroups left after delete: %v", d)
	}
}

func TestRunHelper(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("run")
	out := e.outFile("out")
	ex, err := e.rt.Run(ctx, id, e.bundle(id, nil, "/bin/echo", "hi"), CreateOpts{Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	if ex.Code != 0 || readTrim(t, out.Name()) != "hi" {
		t.Fatalf("exit %+v out %q", ex, readTrim(t, out.Name()))
	}
}

func TestKillDeleteList(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	a, b := e.id("a"), e.id("b")
	for _, id := range []string{a, b} {
		if err := e.rt.Create(ctx, id, e.bundle(id, nil, "/bin/sleep", "1000"), CreateOpts{}); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// Delete skips runsc for containers it has no state file for: the
	// layout it relies on must be the pinned runsc's.
	for _, id := range []string{a, b} {
		if !e.rt.(*runsc).known(id) {
			t.Errorf("%s: no %s_sandbox:* state under %s; Delete would skip a live container", id, id, e.rt.(*runsc).root)
		}
	}
	if e.rt.(*runsc).known(e.id("ghost")) {
		t.Errorf("a container never created reads as known")
	}
	sts, err := e.rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sts {
		ids = append(ids, s.ID)
		if s.Status != StatusRunning {
			t.Errorf("%s: status %s", s.ID, s.Status)
		}
	}
	slices.Sort(ids)
	want := []string{a, b}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("list %v want %v", ids, want)
	}
	// Delete without force on a running container is a conflict.
	if err := e.rt.Delete(ctx, a, false); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("delete running without force: %v, want conflict", err)
	}
	if err := e.rt.Kill(ctx, a, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	ex, err := e.rt.Wait(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Signal != syscall.SIGTERM || ex.Code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit after SIGTERM %+v", ex)
	}
	if err := e.rt.Delete(ctx, a, false); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Delete(ctx, b, true); err != nil {
		t.Fatal(err)
	}
	if sts, err := e.rt.List(ctx); err != nil || len(sts) != 0 {
		t.Errorf("list after delete: %v %v", sts, err)
	}
	if e.rt.(*runsc).known(a) {
		t.Errorf("%s still known after delete", a)
	}
}

// TestErrorClasses produces runsc's error messages for real, so a runsc
// whose wording changes fails here.
func TestErrorClasses(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	for name, f := range map[string]func() error{
		"state":  func() error { _, err := e.rt.State(ctx, "ghost"); return err },
		"start":  func() error { return e.rt.Start(ctx, "ghost") },
		"kill":   func() error { return e.rt.Kill(ctx, "ghost", syscall.SIGKILL, false) },
		"delete": func() error { return e.rt.Delete(ctx, "ghost", true) },
		"wait":   func() error { _, err := e.rt.Wait(ctx, "ghost"); return err },
		"exec":   func() error { _, err := e.rt.Exec(ctx, "ghost", ExecOpts{Args: []string{"true"}}); return err },
		"stats":  func() error { _, err := e.rt.Stats(ctx, "ghost"); return err },
	} {
		if err := f(); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s of a missing container: %v, want not found", name, err)
		}
	}
	id := e.id("dup")
	b := e.bundle(id, nil, "/bin/sleep", "1000")
	if err := e.rt.Create(ctx, id, b, CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	err := e.rt.Create(ctx, id, b, CreateOpts{})
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second create: %v, want already exists", err)
	}
	if err := e.rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Start(ctx, id); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("second start: %v, want conflict", err)
	}
	if err := e.rt.Create(ctx, "Bad/ID", b, CreateOpts{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad id: %v", err)
	}
	if err := e.rt.Create(ctx, e.id("nob"), filepath.Join(e.workdir, "nobundle"), CreateOpts{}); err == nil || !os.IsNotExist(errors.Unwrap(errors.Unwrap(err))) && err == nil {
		t.Errorf("missing bundle: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Option{
		"root":     WithRoot("rel"),
		"platform": WithPlatform("xen"),
		"network":  WithNetwork("bridge"),
		"timeout":  WithDefaultTimeout(0),
		"binary":   WithBinary("/nonexistent/runsc"),
		"logger":   WithLogger(nil),
		"overlay2": WithOverlay2(""),
	} {
		if _, err := New(o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want invalid argument", name, err)
		}
	}
}

func TestKillStopped(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("ks")
	if _, err := e.rt.Run(ctx, id, e.bundle(id, nil, "/bin/true"), CreateOpts{}); err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	err := e.rt.Kill(ctx, id, syscall.SIGKILL, false)
	t.Logf("kill of an exited container: %v", err)
	if err != nil && !errors.Is(err, errdefs.ErrConflict) && !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("kill of an exited container: %v, want conflict", err)
	}
}

// CreateOpts.Start creates and starts in one runsc call (`run --detach`).
func TestCreateStarted(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	id := e.id("started")
	if err := e.rt.Create(ctx, id, e.bundle(id, nil, "/bin/sleep", "1000"), CreateOpts{Start: true}); err != nil {
		t.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	st, err := e.rt.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusRunning || st.Pid <= 0 {
		t.Errorf("after Create with Start: %+v, want running with a pid", st)
	}
	if err := e.rt.Start(ctx, id); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Start after Create with Start: %v, want conflict (already started)", err)
	}
	if err := e.rt.Kill(ctx, id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if ex, err := e.rt.Wait(ctx, id); err != nil || ex.Signal != syscall.SIGKILL {
		t.Errorf("wait: %+v %v, want killed by SIGKILL (exit status tracked as for create+start)", ex, err)
	}
}

// A process that exits at once can leave its gofer a zombie before runsc
// run --detach returns (seen under load); the reaper must still know it
// for ours, by its comm, and collect it.
func TestRunQuickExitLeavesNoZombie(t *testing.T) {
	e := newTestEnv(t)
	ctx := e.ctx()
	for i := range 10 {
		id := e.id("qx")
		if _, err := e.rt.Run(ctx, id, e.bundle(id, nil, "/bin/true"), CreateOpts{}); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
		Reap()
		if z := zombieChildren(); len(z) > 0 {
			t.Fatalf("run %d: zombie children %v", i, z)
		}
	}
}
