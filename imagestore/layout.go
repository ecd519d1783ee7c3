package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// refAnnotation names an index entry, as in image-spec's annotations.md. We
// store the full normalized reference (registry/repo:tag or repo@digest),
// like containerd's io.containerd.image.name, so one layout holds many repos.
const refAnnotation = "org.opencontainers.image.ref.name"

func (s *store) indexPath() string { return filepath.Join(s.imagesDir(), "index.json") }

func (s *store) initLayout(ctx context.Context) error {
	l, err := s.lock(ctx, "index.lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer l.unlock()
	if _, err := os.Stat(filepath.Join(s.imagesDir(), "oci-layout")); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(filepath.Join(s.imagesDir(), "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n")); err != nil {
			return err
		}
	}
	if _, err := os.Stat(s.indexPath()); errors.Is(err, os.ErrNotExist) {
		return s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}})
	}
	return nil
}

// readIndex reads index.json; it is replaced by rename, so no lock is needed.
func (s *store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.indexPath())
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.indexPath(), err)
	}
	return idx, nil
}

func (s *store) writeIndex(idx *v1.IndexManifest) error {
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.indexPath(), append(b, '\n'))
}

// updateIndex runs fn on index.json under the index lock and writes the result.
func (s *store) updateIndex(ctx context.Context, fn func(*v1.IndexManifest) error) error {
	l, err := s.lock(ctx, "index.lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer l.unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := fn(idx); err != nil {
		return err
	}
	return s.writeIndex(idx)
}

// writeBlob stores b as a blob if not present and returns its digest.
func (s *store) writeBlob(b []byte) (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return h, err
	}
	p := s.blobPath(h)
	if _, err := os.Stat(p); err == nil {
		return h, nil
	}
	return h, writeFileAtomic(p, b)
}

func (s *store) readBlob(h v1.Hash) ([]byte, error) {
	if h.Algorithm != "sha256" {
		return nil, fmt.Errorf("digest %s: unsupported algorithm", h)
	}
	return os.ReadFile(s.blobPath(h))
}

func (s *store) hasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.blobPath(h))
	return err == nil
}

// writeFileAtomic writes through a temporary file and renames it into
// place, so a reader sees the old file or the new one, never a part.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
