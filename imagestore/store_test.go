package imagestore

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	ti "github.com/pinacle/pinacle-node/internal/testimage"
)

func mustImage(t testing.TB, cfg ti.Config, layers ...[]ti.File) v1.Image {
	t.Helper()
	img, err := ti.Image(cfg, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t testing.TB, r *ti.Registry, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := r.Push(context.Background(), repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func layerDigests(t testing.TB, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, _ := l.Digest()
		out = append(out, d.String())
	}
	return out
}

// appImage is base + a layer deleting /etc/hostname and making /opt opaque + an app layer.
func appImage(t testing.TB, app string) v1.Image {
	return mustImage(t, ti.Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo hi"}, Env: []string{"A=1"}, WorkingDir: "/srv", User: "dev"},
		[]ti.File{ti.Dir("opt", 0o755), ti.Reg("opt/old", "old", 0o644)},
		[]ti.File{ti.Whiteout("etc/hostname"), ti.Opaque("opt"), ti.Reg("opt/new", "new", 0o644), ti.Reg("srv/app", app, 0o755)},
	)
}

func TestPullUnpacks(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	reg := ti.StartRegistry(t, nil)
	ref := push(t, reg, "app:v1", appImage(t, "one"))
	s, _ := newTestStore(t)

	var mu sync.Mutex
	phases := map[Phase]int{}
	img, err := s.Pull(ctx, ref, WithProgress(func(e Event) { mu.Lock(); phases[e.Phase]++; mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Refs) != 1 || img.Refs[0] != ref || len(img.Layers) != 3 || img.Size == 0 {
		t.Errorf("image = %+v", img)
	}
	if phases[PhaseResolving] == 0 || phases[PhaseDownloading] == 0 || phases[PhaseDone] == 0 {
		t.Errorf("progress phases %v", phases)
	}
	rfs, err := s.RootFS(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(rfs.LayerDirs) != 3 || rfs.Config.Config.User != "dev" || rfs.Config.Config.WorkingDir != "/srv" || rfs.Size != img.Size {
		t.Fatalf("rootfs = %+v", rfs)
	}
	base, top := rfs.LayerDirs[0], rfs.LayerDirs[2]
	if fi, err := os.Stat(filepath.Join(base, "bin/busybox")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("busybox: %v %v", fi, err)
	}
	if l, _ := os.Readlink(filepath.Join(base, "bin/sh")); l != "busybox" {
		t.Errorf("bin/sh -> %q", l)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(top, "etc/hostname"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout: %v mode %o", err, st.Mode)
	}
	buf := make([]byte, 2)
	if n, err := unix.Lgetxattr(filepath.Join(top, "opt"), overlayOpaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque opt: %q %v", buf[:n], err)
	}
	if b, _ := os.ReadFile(filepath.Join(top, "srv/app")); string(b) != "one" {
		t.Errorf("srv/app = %q", b)
	}
	// Layout: index.json names the ref; blobs exist.
	got, err := s.Get(ctx, "sha256:"+strings.TrimPrefix(img.ID, "sha256:")[:12])
	if err != nil || got.Digest != img.Digest {
		t.Errorf("Get(short id) = %v, %v", got, err)
	}
	for _, l := range img.Layers {
		h, _ := v1.NewHash(l.Digest)
		if !s.hasBlob(h) {
			t.Errorf("blob %s missing", l.Digest)
		}
	}
	// A second pull is all cached.
	phases = map[Phase]int{}
	if _, err := s.Pull(ctx, ref, WithProgress(func(e Event) { mu.Lock(); phases[e.Phase]++; mu.Unlock() })); err != nil {
		t.Fatal(err)
	}
	if phases[PhaseCached] != 3 || phases[PhaseDownloading] != 0 {
		t.Errorf("second pull phases %v, want 3 cached", phases)
	}
}

func TestPullSharedBaseFetchesOnlyNewLayers(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	var count ti.BlobCounter
	reg := ti.StartRegistry(t, count.Wrap)
	a, b := appImage(t, "a"), appImage(t, "b")
	refA, refB := push(t, reg, "a:1", a), push(t, reg, "b:1", b)
	s, _ := newTestStore(t)
	if _, err := s.Pull(ctx, refA); err != nil {
		t.Fatal(err)
	}
	count.Reset()
	if _, err := s.Pull(ctx, refB); err != nil {
		t.Fatal(err)
	}
	da, db := layerDigests(t, a), layerDigests(t, b)
	if da[0] != db[0] || da[1] != db[1] || da[2] == db[2] {
		t.Fatalf("test images should share two layers: %v %v", da, db)
	}
	for _, d := range db[:2] {
		if n := count.Count(d); n != 0 {
			t.Errorf("shared layer %s fetched %d times", d, n)
		}
	}
	if n := count.Count(db[2]); n != 1 {
		t.Errorf("new layer fetched %d times, want 1", n)
	}
}

func TestConcurrentPullsDoWorkOnce(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	var count ti.BlobCounter
	reg := ti.StartRegistry(t, count.Wrap)
	img := appImage(t, "c")
	ref := push(t, reg, "c:1", img)
	s1, root := newTestStore(t)
	// A second Store on the same root stands in for another process: it
	// shares no memory with s1, only the file locks.
	s2, err := New(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		st := s1
		if i%2 == 1 {
			st = s2.(*store)
		}
		wg.Go(func() {
			_, err := st.Pull(ctx, ref)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range layerDigests(t, img) {
		if n := count.Count(d); n != 1 {
			t.Errorf("layer %s fetched %d times, want 1", d, n)
		}
	}
	imgs, err := s1.List(ctx)
	if err != nil || len(imgs) != 1 || len(imgs[0].Refs) != 1 {
		t.Errorf("List = %v, %v", imgs, err)
	}
}

func TestInterruptedPullLeavesNothing(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	img := appImage(t, strings.Repeat("payload ", 200000))
	digests := layerDigests(t, img)
	cut := &ti.CutBlobs{Digest: digests[2], After: 4096}
	reg := ti.StartRegistry(t, cut.Wrap)
	ref := push(t, reg, "cut:1", img)
	cut.Arm(true)
	s, root := newTestStore(t)

	_, err := s.Pull(ctx, ref)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), ref) {
		t.Fatalf("err = %v, want unavailable naming %s", err, ref)
	}
	if cut.Cuts() == 0 {
		t.Fatal("the fault never fired")
	}
	cfg, _ := img.ConfigFile()
	top := cfg.RootFS.DiffIDs[2]
	if _, err := os.Stat(s.layerPath(top)); err == nil {
		t.Error("partial layer directory committed")
	}
	h, _ := v1.NewHash(digests[2])
	if s.hasBlob(h) {
		t.Error("partial blob committed")
	}
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Errorf("index has %d images after a failed pull", len(imgs))
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("tmp not cleaned: %v", ents)
	}
	cut.Arm(false)
	if _, err := s.Pull(ctx, ref); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if _, err := s.RootFS(ctx, ref); err != nil {
		t.Fatal(err)
	}
}

func TestPullErrors(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	if _, err := s.Pull(ctx, "Not A Ref!!"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad ref: %v", err)
	}
	reg := ti.StartRegistry(t, nil)
	if _, err := s.Pull(ctx, reg.Ref("missing:1")); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing image: %v", err)
	}
	dead := ti.NewRegistry(nil)
	host := dead.Host
	dead.Close()
	if _, err := s.Pull(ctx, host+"/x:1"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("dead registry: %v", err)
	}
	if _, err := s.Get(ctx, "nope:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	if _, err := New(ctx, t.TempDir(), WithJobs(0)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("WithJobs(0): %v", err)
	}
	if _, err := New(ctx, t.TempDir(), WithMirrors(map[string][]string{"docker.io": {"ftp://x"}})); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad mirror: %v", err)
	}
}

func TestPullHostileLayer(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	img := mustImage(t, ti.Config{}, []ti.File{{Path: "../../escape", Data: []byte("x"), Raw: true}})
	reg := ti.StartRegistry(t, nil)
	ref := push(t, reg, "evil:1", img)
	s, root := newTestStore(t)
	_, err := s.Pull(ctx, ref)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "../../escape") {
		t.Fatalf("err = %v, want invalid argument naming ../../escape", err)
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); err == nil {
		t.Error("escape written")
	}
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Error("hostile image indexed")
	}
}

func TestPullByDigestAndIndex(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	reg := ti.StartRegistry(t, nil)
	img := appImage(t, "d")
	ref := push(t, reg, "d:1", img)
	d, _ := img.Digest()
	s, _ := newTestStore(t)
	dref := reg.Host + "/d@" + d.String()
	got, err := s.Pull(ctx, dref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != d.String() {
		t.Errorf("digest %s, want %s", got.Digest, d)
	}
	for _, q := range []string{dref, d.String(), got.ID, got.ShortID()} {
		if g, err := s.Get(ctx, q); err != nil || g.Digest != d.String() {
			t.Errorf("Get(%q) = %v, %v", q, g, err)
		}
	}
	if _, err := s.Get(ctx, ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("tag never pulled resolves: %v", err)
	}
	// A digest that the registry serves differently is rejected.
	bogus := reg.Host + "/d@sha256:" + strings.Repeat("0", 64)
	if _, err := s.Pull(ctx, bogus); err == nil {
		t.Error("pull of an unknown digest succeeded")
	}
}

func TestMirrorThenFallback(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	var originCount, mirrorCount ti.BlobCounter
	origin := ti.StartRegistry(t, originCount.Wrap)
	mirror := ti.StartRegistry(t, mirrorCount.Wrap)
	empty := ti.StartRegistry(t, nil)
	img := appImage(t, "m")
	ref := push(t, origin, "lib/m:1", img)
	push(t, mirror, "lib/m:1", img)

	s, _ := newTestStore(t, WithMirrors(map[string][]string{origin.Host: {"http://" + mirror.Host}}))
	got, err := s.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Refs[0] != ref {
		t.Errorf("stored as %v, want the origin name %s", got.Refs, ref)
	}
	if mirrorCount.Total() == 0 || originCount.Total() != 0 {
		t.Errorf("blob GETs: mirror %d origin %d, want all from the mirror", mirrorCount.Total(), originCount.Total())
	}

	s2, _ := newTestStore(t, WithMirrors(map[string][]string{origin.Host: {"http://" + empty.Host}}))
	if _, err := s2.Pull(ctx, ref); err != nil {
		t.Fatalf("fallback to origin: %v", err)
	}
	if originCount.Total() == 0 {
		t.Error("origin not used after the mirror failed")
	}
}

func TestPlainHTTPPolicy(t *testing.T) {
	s, _ := newTestStore(t, WithInsecureRegistries("10.1.2.3:5000"))
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.9.9.9": true, "localhost:80": true, "[::1]:5000": true,
		"10.1.2.3:5000": true, "10.1.2.4:5000": false, "192.168.1.1:5000": false, "ghcr.io": false,
	} {
		if got := s.plainHTTPAllowed(host); got != want {
			t.Errorf("plainHTTPAllowed(%s) = %v, want %v", host, got, want)
		}
	}
	req, _ := http.NewRequest("GET", "http://192.168.1.1:5000/v2/", nil)
	if _, err := s.transport.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("plain http to a private address: %v", err)
	}
}
