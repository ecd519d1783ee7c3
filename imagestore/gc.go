package imagestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

func (s *store) Remove(ctx context.Context, ref string) ([]string, error) {
	var removed []string
	err := s.updateIndex(ctx, func(idx *v1.IndexManifest) error {
		d, err := s.resolve(idx, ref)
		if err != nil {
			return err
		}
		// A name removes that name; a digest or ID removes the image.
		name := ""
		for _, m := range idx.Manifests {
			if r := m.Annotations[refAnnotation]; m.Digest == d && r != "" && (r == ref || normalizeRef(ref) == r) {
				name = r
			}
		}
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m v1.Descriptor) bool {
			if m.Digest != d || (name != "" && m.Annotations[refAnnotation] != name) {
				return false
			}
			if r := m.Annotations[refAnnotation]; r != "" {
				removed = append(removed, r)
			}
			return true
		})
		if len(removed) == 0 {
			removed = append(removed, d.String())
		}
		return nil
	})
	return removed, err
}

// leaseFile is where holder's lease lives; holder is validated first.
func (s *store) leaseFile(holder string) (string, error) {
	if err := errdefs.ValidateID("lease holder", holder); err != nil {
		return "", err
	}
	return filepath.Join(s.leaseDir(), holder+".json"), nil
}

func (s *store) AddLease(ctx context.Context, holder, image string) (*Lease, error) {
	p, err := s.leaseFile(holder)
	if err != nil {
		return nil, err
	}
	// Shared store lock: GC cannot run between finding the image and
	// recording the lease.
	lk, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	d, err := s.resolve(idx, image)
	if err != nil {
		// The image may be untagged already but still leased by another
		// holder: a bare manifest digest whose blob exists is good enough.
		h, herr := v1.NewHash(image)
		if herr != nil || !s.hasBlob(h) {
			return nil, fmt.Errorf("lease %s: %w", holder, err)
		}
		d = h
	}
	l := &Lease{Holder: holder, Image: d.String(), Created: time.Now().UTC()}
	b, _ := json.Marshal(l)
	if err := fileutil.WriteAtomic(p, b, 0o644); err != nil {
		return nil, err
	}
	return l, nil
}

func (s *store) RemoveLease(ctx context.Context, holder string) error {
	p, err := s.leaseFile(holder)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *store) Leases(ctx context.Context) ([]*Lease, error) {
	ents, err := os.ReadDir(s.leaseDir())
	if err != nil {
		return nil, err
	}
	var out []*Lease
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.leaseDir(), e.Name()))
		if err != nil {
			return nil, err
		}
		var l Lease
		if err := fileutil.UnmarshalStrict(b, &l); err != nil {
			return nil, fmt.Errorf("lease %s: %w", e.Name(), err)
		}
		out = append(out, &l)
	}
	return out, nil
}

// GC marks everything reachable from index.json and the leases, then
// sweeps blobs, layer directories and leftovers of interrupted work.
func (s *store) GC(ctx context.Context) (*GCResult, error) {
	lk, err := s.lockExclusive(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()

	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	leases, err := s.Leases(ctx)
	if err != nil {
		return nil, err
	}
	blobs, layers, err := s.reachable(idx, leases)
	if err != nil {
		return nil, err
	}
	res := &GCResult{Blobs: []string{}, Layers: []string{}}
	if err := s.sweepBlobs(blobs, res); err != nil {
		return res, err
	}
	if err := s.sweepLayers(layers, res); err != nil {
		return res, err
	}
	if err := s.sweepTmp(); err != nil {
		return res, err
	}
	s.opts.log.Info("gc", "blobs", len(res.Blobs), "layers", len(res.Layers), "bytes", res.Bytes)
	return res, nil
}

// reachable marks the blobs (by hex digest) and unpacked layers (by diffID
// hex) that the index's images and the leased images use.
func (s *store) reachable(idx *v1.IndexManifest, leases []*Lease) (blobs, layers map[string]bool, err error) {
	blobs, layers = map[string]bool{}, map[string]bool{}
	roots := []v1.Hash{}
	for _, d := range idx.Manifests {
		roots = append(roots, d.Digest)
	}
	for _, l := range leases {
		if h, err := v1.NewHash(l.Image); err == nil {
			roots = append(roots, h)
		}
	}
	for _, d := range roots {
		blobs[d.Hex] = true
		raw, err := s.readBlob(d)
		if err != nil {
			continue // a lease on content already gone
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, nil, fmt.Errorf("gc: manifest %s: %w", d, err)
		}
		blobs[m.Config.Digest.Hex] = true
		for _, l := range m.Layers {
			blobs[l.Digest.Hex] = true
		}
		rawCfg, err := s.readBlob(m.Config.Digest)
		if err != nil {
			continue
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
		if err != nil {
			return nil, nil, fmt.Errorf("gc: config %s: %w", m.Config.Digest, err)
		}
		for _, id := range cfg.RootFS.DiffIDs {
			layers[id.Hex] = true
		}
	}
	return blobs, layers, nil
}

// sweepBlobs removes the blobs not in keep, adding them to res.
func (s *store) sweepBlobs(keep map[string]bool, res *GCResult) error {
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if info, err := e.Info(); err == nil {
			res.Bytes += info.Size()
		}
		if err := os.Remove(filepath.Join(s.blobDir(), e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if !strings.HasPrefix(e.Name(), ".") {
			res.Blobs = append(res.Blobs, "sha256:"+e.Name())
		}
	}
	return nil
}

// sweepLayers removes the unpacked layers not in keep, adding them to res.
func (s *store) sweepLayers(keep map[string]bool, res *GCResult) error {
	ents, err := os.ReadDir(s.layersDir())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if h, err := v1.NewHash("sha256:" + e.Name()); err == nil {
			if meta, err := s.readLayerMeta(h); err == nil {
				res.Bytes += meta.Unpacked
			}
		}
		// Rename first so a crash mid-removal leaves no half layer under
		// its real name; tmp/ is swept below and by the next GC.
		trash, err := s.tempDir("gc")
		if err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(s.layersDir(), e.Name()), filepath.Join(trash, "l")); err != nil {
			return err
		}
		if err := os.RemoveAll(trash); err != nil {
			return err
		}
		// The layer's lock file is only a name to flock; one left behind
		// is recreated or swept with the next GC of that layer.
		_ = os.Remove(filepath.Join(s.lockDir(), "layer-"+e.Name()+".lock"))
		res.Layers = append(res.Layers, "sha256:"+e.Name())
	}
	return nil
}

// sweepTmp removes everything under tmp/: with the store lock held
// exclusively no pull or import is running, so it is all left over from
// an interrupted one.
func (s *store) sweepTmp() error {
	ents, err := os.ReadDir(s.tmpRoot())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.tmpRoot(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
