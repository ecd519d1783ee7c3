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

	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// refAnnotation names an index entry, as in image-spec's annotations.md. We
// store the full normalized reference (registry/repo:tag or repo@digest),
// like containerd's io.containerd.image.name, so one layout holds many repos.
const refAnnotation = "org.opencontainers.image.ref.name"

func (s *store) indexPath() string { return filepath.Join(s.imagesDir(), "index.json") }

func (s *store) initLayout(ctx context.Context) error {
	l, err := s.lock(ctx, "index.lock", false)
	if err != nil {
		return err
	}
	defer l.Unlock()
	if _, err := os.Stat(filepath.Join(s.imagesDir(), "oci-layout")); errors.Is(err, os.ErrNotExist) {
		if err := fileutil.WriteAtomic(filepath.Join(s.imagesDir(), "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`+"\n"), 0o644); err != nil {
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
	return fileutil.WriteAtomic(s.indexPath(), append(b, '\n'), 0o644)
}

// updateIndex runs fn on index.json under the index lock and writes the result.
func (s *store) updateIndex(ctx context.Context, fn func(*v1.IndexManifest) error) error {
	l, err := s.lock(ctx, "index.lock", false)
	if err != nil {
		return err
	}
	defer l.Unlock()
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
	return h, fileutil.WriteAtomic(p, b, 0o644)
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
