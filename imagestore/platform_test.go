package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	ti "github.com/pinacle/pinacle-node/internal/testimage"
)

func TestPullPicksPlatformFromIndex(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	reg := ti.StartRegistry(t, nil)
	ours := appImage(t, "ours")
	other := appImage(t, "other")
	otherArch := "s390x"
	if runtime.GOARCH == otherArch {
		otherArch = "riscv64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: ours, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	ref, err := reg.PushIndex(ctx, "multi:1", idx)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestStore(t)
	got, err := s.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := ours.Digest(); got.Digest != d.String() {
		t.Errorf("pulled %s, want the %s image %s", got.Digest, runtime.GOARCH, d)
	}
	onlyOther := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}})
	ref2, err := reg.PushIndex(ctx, "foreign:1", onlyOther)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, ref2); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("index without our platform: %v", err)
	}
}

func TestPullZstdLayer(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	mk := func(c compression.Compression, files ...ti.File) v1.Layer {
		b, err := ti.Tar(files...)
		if err != nil {
			t.Fatal(err)
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithCompression(c))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	base, err := ti.BaseLayer()
	if err != nil {
		t.Fatal(err)
	}
	img, err := ti.FromLayers(ti.Config{}, base, mk(compression.ZStd, ti.Reg("z", "zstd", 0o644)))
	if err != nil {
		t.Fatal(err)
	}
	reg := ti.StartRegistry(t, nil)
	ref := push(t, reg, "zstd:1", img)
	s, _ := newTestStore(t)
	if _, err := s.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	rfs, err := s.RootFS(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(rfs.LayerDirs[1], "z")); string(b) != "zstd" {
		t.Errorf("zstd layer content %q", b)
	}
}

// corruptWriter flips one byte of a blob body, keeping its length.
type corruptWriter struct {
	http.ResponseWriter
	done bool
}

func (w *corruptWriter) Write(p []byte) (int, error) {
	if !w.done && len(p) > 100 {
		q := bytes.Clone(p)
		q[100] ^= 0xff
		w.done = true
		return w.ResponseWriter.Write(q)
	}
	return w.ResponseWriter.Write(p)
}

func TestPullWrongDigestRejected(t *testing.T) {
	requiresRoot(t)
	ctx := context.Background()
	img := appImage(t, strings.Repeat("z", 10000))
	bad := layerDigests(t, img)[2]
	reg := ti.StartRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+bad) {
				w = &corruptWriter{ResponseWriter: w}
			}
			h.ServeHTTP(w, r)
		})
	})
	ref := push(t, reg, "corrupt:1", img)
	s, _ := newTestStore(t)
	_, err := s.Pull(ctx, ref)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want invalid argument naming layer %s", err, bad)
	}
	if imgs, _ := s.List(ctx); len(imgs) != 0 {
		t.Error("corrupt image indexed")
	}
}
