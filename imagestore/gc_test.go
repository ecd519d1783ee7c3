package imagestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	ti "github.com/pinacle/pinacle-node/internal/testimage"
)

func diffIDs(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.RootFS.DiffIDs
}

func TestRemoveGCAndLeases(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	reg := ti.StartRegistry(t, nil)
	a, b := appImage(t, "gc-a"), appImage(t, "gc-b")
	refA, refB := push(t, reg, "a:1", a), push(t, reg, "b:1", b)
	s, _ := newTestStore(t)
	imgA, err := s.Pull(ctx, refA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, refB); err != nil {
		t.Fatal(err)
	}
	onlyA := diffIDs(t, a)[2]
	shared := diffIDs(t, a)[0]

	if _, err := s.AddLease(ctx, "pod-1", refA); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddLease(ctx, "../bad", refA); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad holder: %v", err)
	}
	if _, err := s.AddLease(ctx, "pod-2", "nope:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("lease on unknown image: %v", err)
	}
	removed, err := s.Remove(ctx, refA)
	if err != nil || !slices.Equal(removed, []string{refA}) {
		t.Fatalf("Remove = %v, %v", removed, err)
	}
	if _, err := s.Get(ctx, refA); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Layers) != 0 || !s.hasLayer(onlyA) {
		t.Errorf("GC removed leased content: %+v", res)
	}
	// The lease still gives a rootfs by digest, as a running pod needs.
	if rfs, err := s.RootFS(ctx, imgA.Digest); err != nil || len(rfs.LayerDirs) != 3 {
		t.Errorf("RootFS of a removed but leased image by digest: %v", err)
	}
	if err := s.RemoveLease(ctx, "pod-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveLease(ctx, "pod-1"); err != nil {
		t.Errorf("second RemoveLease: %v", err)
	}
	res, err = s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Layers, onlyA.String()) || s.hasLayer(onlyA) || res.Bytes == 0 {
		t.Errorf("GC did not free A's own layer: %+v", res)
	}
	if !s.hasLayer(shared) {
		t.Error("GC removed a layer B still uses")
	}
	if _, err := s.RootFS(ctx, refB); err != nil {
		t.Errorf("B after GC: %v", err)
	}
	// Remove by ID drops every tag of the image.
	img, _ := s.Get(ctx, refB)
	if _, err := s.Remove(ctx, img.ShortID()); err != nil {
		t.Fatal(err)
	}
	res, err = s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.layersDir())
	blobs, _ := os.ReadDir(s.blobDir())
	if len(ents) != 0 || len(blobs) != 0 {
		t.Errorf("after removing everything: %d layers, %d blobs left", len(ents), len(blobs))
	}
}

func TestImportDockerSaveAndLayout(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	img := appImage(t, "imp")
	other := mustImage(t, ti.Config{Cmd: []string{"true"}}, []ti.File{ti.Reg("x", "other", 0o644)})

	save := filepath.Join(dir, "save.tar")
	if err := ti.WriteDockerSave(save, map[string]v1.Image{"example.com/app:1": img, "example.com/app:latest": img, "other:2": other}); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestStore(t)
	imgs, err := s.Import(ctx, save)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Errorf("imported %d images, want 2", len(imgs))
	}
	for _, r := range []string{"example.com/app:1", "example.com/app:latest", "other:2"} {
		rfs, err := s.RootFS(ctx, r)
		if err != nil {
			t.Errorf("RootFS(%s): %v", r, err)
			continue
		}
		if _, err := os.Stat(filepath.Join(rfs.LayerDirs[0], "bin/busybox")); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}

	layoutDir := filepath.Join(dir, "layout")
	if err := ti.WriteOCILayout(layoutDir, map[string]v1.Image{"latest": img}); err != nil {
		t.Fatal(err)
	}
	s2, _ := newTestStore(t)
	imgs, err = s2.Import(ctx, layoutDir, WithRef("example.com/fromlayout"))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !slices.Equal(imgs[0].Refs, []string{"example.com/fromlayout:latest"}) {
		t.Errorf("layout import = %+v", imgs[0])
	}
	want, _ := img.Digest()
	if imgs[0].Digest != want.String() {
		t.Errorf("layout import changed the digest: %s != %s", imgs[0].Digest, want)
	}

	layoutTar := filepath.Join(dir, "layout.tar")
	if err := ti.WriteOCILayoutTar(layoutTar, map[string]v1.Image{"registry.local/x:9": img}); err != nil {
		t.Fatal(err)
	}
	s3, _ := newTestStore(t)
	if imgs, err = s3.Import(ctx, layoutTar); err != nil || !slices.Equal(imgs[0].Refs, []string{"registry.local/x:9"}) {
		t.Fatalf("layout tar import = %v, %v", imgs, err)
	}
	if _, err := s3.RootFS(ctx, "registry.local/x:9"); err != nil {
		t.Error(err)
	}

	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not a tar"), 0o644)
	if _, err := s3.Import(ctx, junk); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("junk import: %v", err)
	}
	if _, err := s3.Import(ctx, filepath.Join(dir, "missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing import: %v", err)
	}
}
