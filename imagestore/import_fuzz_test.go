package imagestore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/testenv"
	ti "github.com/pinacle/pinacle-node/internal/testimage"
)

// FuzzImport feeds arbitrary files to Import, seeded with a real `docker
// save` tarball and a real OCI-layout tar: whatever the file holds, Import
// returns an image or an error, never panics, and writes nothing outside
// its store.
func FuzzImport(f *testing.F) {
	testenv.RequireRoot(f) // layers unpack with whiteouts and owners
	img, err := ti.Image(ti.Config{Cmd: []string{"/x"}}, []ti.File{ti.Dir("d", 0o755), ti.Reg("d/x", "x", 0o755), ti.Symlink("l", "d/x")})
	if err != nil {
		f.Fatal(err)
	}
	seeds := f.TempDir()
	images := map[string]v1.Image{"example.com/fuzz:1": img}
	for name, write := range map[string]func(string, map[string]v1.Image) error{
		"save.tar": ti.WriteDockerSave, "layout.tar": ti.WriteOCILayoutTar,
	} {
		p := filepath.Join(seeds, name)
		if err := write(p, images); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, outside)
		// assertNothingOutside allows only "layer" and "outside" in base.
		s, err := New(context.Background(), filepath.Join(base, "layer"))
		if err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(t.TempDir(), "in.tar")
		if err := os.WriteFile(in, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _ = s.Import(context.Background(), in) // any error is fine; a panic or an escape is not
		assertNothingOutside(t, base, before)
	})
}
