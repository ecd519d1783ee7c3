package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root (mounts, loop devices)")
	}
}

// workDir returns a scratch dir that the test checks for leaked mounts and
// loop devices at the end.
func scratch(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		if m := mountsUnder(dir); len(m) > 0 {
			t.Errorf("leak: mounts under %s: %v", dir, m)
			for i := len(m) - 1; i >= 0; i-- {
				unix.Unmount(m[i], unix.MNT_DETACH)
			}
		}
		// Autoclear frees the device asynchronously after the last close.
		deadline := time.Now().Add(5 * time.Second)
		for len(LoopDevices(dir)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if l := LoopDevices(dir); len(l) > 0 {
			t.Errorf("leak: loop devices %v", l)
		}
	})
	return dir
}

func mountsUnder(dir string) []string {
	all, _ := mounts()
	var out []string
	for _, m := range all {
		if m.target == dir || strings.HasPrefix(m.target, dir+"/") {
			out = append(out, m.target)
		}
	}
	return out
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMountLayersAndPersistence(t *testing.T) {
	dir := scratch(t)
	ctx := context.Background()
	l0, l1, pod := filepath.Join(dir, "l0"), filepath.Join(dir, "l1"), filepath.Join(dir, "pod")
	writeFiles(t, l0, map[string]string{"a": "base", "b": "base"})
	writeFiles(t, l1, map[string]string{"b": "top", "c": "top"})
	r, err := Mount(ctx, []string{l0, l1}, pod, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"a": "base", "b": "top", "c": "top"} {
		if got := mustRead(t, filepath.Join(r.Path, f)); got != want {
			t.Errorf("%s = %q, want %q (upper layer must win)", f, got, want)
		}
	}
	if _, err := Mount(ctx, []string{l0}, pod, Options{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second mount: %v, want already exists", err)
	}
	writeFiles(t, r.Path, map[string]string{"new": "pod", "a": "changed"})
	if err := os.Remove(filepath.Join(r.Path, "c")); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(l0, "a")); got != "base" {
		t.Fatalf("lower layer modified: %q", got)
	}
	if err := r.Unmount(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(ctx, pod); err != nil {
		t.Fatalf("second unmount must succeed: %v", err)
	}
	r, err = Mount(ctx, []string{l0, l1}, pod, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if mustRead(t, filepath.Join(r.Path, "new")) != "pod" || mustRead(t, filepath.Join(r.Path, "a")) != "changed" {
		t.Error("writes did not persist across unmount and mount")
	}
	if _, err := os.Stat(filepath.Join(r.Path, "c")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted file came back: %v", err)
	}
	if err := Remove(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pod, "upper")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upper left after Remove: %v", err)
	}
}

// Layers from the image store carry overlay-form whiteouts (char 0:0) and
// opaque directories (trusted.overlay.opaque=y).
func TestWhiteoutsInLowerLayers(t *testing.T) {
	dir := scratch(t)
	ctx := context.Background()
	l0, l1, pod := filepath.Join(dir, "l0"), filepath.Join(dir, "l1"), filepath.Join(dir, "pod")
	writeFiles(t, l0, map[string]string{"keep": "1", "gone": "1", "d/old": "1", "e/kept": "1"})
	writeFiles(t, l1, map[string]string{"d/new": "2", "e/added": "2"})
	if err := unix.Mknod(filepath.Join(l1, "gone"), unix.S_IFCHR|0o644, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(l1, "d"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	r, err := Mount(ctx, []string{l0, l1}, pod, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(ctx, pod)
	if _, err := os.Lstat(filepath.Join(r.Path, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("whited-out file visible: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(r.Path, "d/old")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file under opaque dir visible: %v", err)
	}
	for _, p := range []string{"keep", "d/new", "e/kept", "e/added"} {
		if _, err := os.Stat(filepath.Join(r.Path, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	ents, _ := os.ReadDir(r.Path)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "d,e,keep" {
		t.Errorf("merged root lists %v, want d,e,keep", names)
	}
}

// Many layers with long paths exceed the one-page option limit of
// mount(2); lowerdir+ has none.
func TestManyLayers(t *testing.T) {
	dir := scratch(t)
	ctx := context.Background()
	var lowers []string
	long := strings.Repeat("x", 100)
	for i := range 120 {
		l := filepath.Join(dir, "layers", fmt.Sprintf("%03d-%s", i, long))
		writeFiles(t, l, map[string]string{fmt.Sprintf("f%03d", i): "x", "top": fmt.Sprint(i)})
		lowers = append(lowers, l)
	}
	pod := filepath.Join(dir, "pod")
	r, err := Mount(ctx, lowers, pod, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer Remove(ctx, pod)
	if got := mustRead(t, filepath.Join(r.Path, "top")); got != "119" {
		t.Errorf("top = %q, want the last (topmost) layer's", got)
	}
	if _, err := os.Stat(filepath.Join(r.Path, "f000")); err != nil {
		t.Error(err)
	}
}

func TestStorageCap(t *testing.T) {
	dir := scratch(t)
	ctx := context.Background()
	l0 := filepath.Join(dir, "l0")
	writeFiles(t, l0, map[string]string{"a": "1"})
	podA, podB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	ra, err := Mount(ctx, []string{l0}, podA, Options{StorageBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Mount(ctx, []string{l0}, podB, Options{StorageBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Storage == "" || !strings.HasPrefix(ra.Upper, ra.Storage) {
		t.Fatalf("upper %q not on storage %q", ra.Upper, ra.Storage)
	}
	if n := len(LoopDevices(dir)); n != 2 {
		t.Errorf("%d loop devices, want 2", n)
	}
	err = fill(filepath.Join(ra.Path, "big"), 64<<20)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 64 MiB into a 32 MiB pod: %v, want ENOSPC", err)
	}
	if err := fill(filepath.Join(rb.Path, "ok"), 8<<20); err != nil {
		t.Errorf("the other pod is affected: %v", err)
	}
	os.Remove(filepath.Join(ra.Path, "big"))
	writeFiles(t, ra.Path, map[string]string{"kept": "yes"})
	if err := Unmount(ctx, podA); err != nil {
		t.Fatal(err)
	}
	// The image is reused, not remade: the write is still there.
	ra, err = Mount(ctx, []string{l0}, podA, Options{StorageBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if mustRead(t, filepath.Join(ra.Path, "kept")) != "yes" {
		t.Error("capped writes did not persist")
	}
	for _, p := range []string{podA, podB} {
		if err := Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(p, storageImg)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("storage image left: %v", err)
		}
	}
}

func fill(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < n; i += len(buf) {
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func TestMountValidation(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	d := t.TempDir()
	for name, f := range map[string]func() error{
		"no lowers":   func() error { _, err := Mount(ctx, nil, d+"/p", Options{}); return err },
		"rel lower":   func() error { _, err := Mount(ctx, []string{"x"}, d+"/p", Options{}); return err },
		"rel pod":     func() error { _, err := Mount(ctx, []string{d}, "p", Options{}); return err },
		"tiny cap":    func() error { _, err := Mount(ctx, []string{d}, d+"/p", Options{StorageBytes: 1}); return err },
		"missing low": func() error { _, err := Mount(ctx, []string{d + "/nope"}, d+"/p", Options{}); return err },
	} {
		if err := f(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want invalid argument", name, err)
		}
	}
	// Unmount and Remove of a pod that was never mounted succeed.
	if err := Remove(ctx, d+"/never"); err != nil {
		t.Error(err)
	}
}
