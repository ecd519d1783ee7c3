package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestImageAndRegistry(t *testing.T) {
	ctx := context.Background()
	img, err := Image(Config{Entrypoint: []string{"/bin/sh"}, User: "dev", WorkingDir: "/w"},
		[]File{Reg("w/a", "a", 0o644), Whiteout("etc/hostname"), Opaque("opt")})
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	if len(ls) != 2 {
		t.Fatalf("%d layers, want 2", len(ls))
	}
	rc, _ := ls[1].Uncompressed()
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	want := []string{"w/a", "etc/.wh.hostname", "opt/.wh..wh..opq"}
	if len(names) != len(want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("entry %d = %q, want %q", i, names[i], want[i])
		}
	}

	var count BlobCounter
	cut := &CutBlobs{After: 10}
	reg := StartRegistry(t, func(h http.Handler) http.Handler { return count.Wrap(cut.Wrap(h)) })
	ref, err := reg.Push(ctx, "t/img:1", img)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref, name.Insecure)
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := got.ConfigFile()
	if cfg.Config.User != "dev" || cfg.Config.WorkingDir != "/w" {
		t.Errorf("config %+v", cfg.Config)
	}
	cut.Arm(true)
	l, _ := got.Layers()
	rc2, err := l[0].Compressed()
	if err == nil {
		_, err = io.Copy(io.Discard, rc2)
		rc2.Close()
	}
	if err == nil || cut.Cuts() != 1 {
		t.Errorf("cut blob read err=%v cuts=%d", err, cut.Cuts())
	}
	d, _ := l[0].Digest()
	if count.Count(d.String()) != 1 {
		t.Errorf("blob GETs %d, want 1", count.Count(d.String()))
	}
}

func TestWriters(t *testing.T) {
	img, err := Busybox()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteDockerSave(filepath.Join(dir, "s.tar"), map[string]v1.Image{"a:1": img}); err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(filepath.Join(dir, "s.tar")) })
	if err != nil || len(m) != 1 || m[0].RepoTags[0] != "a:1" {
		t.Errorf("docker save manifest %v %v", m, err)
	}
	if err := WriteOCILayout(filepath.Join(dir, "l"), map[string]v1.Image{"latest": img}); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(filepath.Join(dir, "l"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "latest" {
		t.Errorf("layout index %+v", im)
	}
	if err := WriteOCILayoutTar(filepath.Join(dir, "l.tar"), map[string]v1.Image{"x:1": img}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "l.tar"))
	if !bytes.Contains(b, []byte("oci-layout")) {
		t.Error("layout tar lacks oci-layout")
	}
}
