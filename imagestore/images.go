package imagestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// storeImage fetches img's layers (concurrently, each once), then writes
// its config and manifest and finally names it in index.json under refs.
// Nothing refers to the content before every piece of it is in place.
func (s *store) storeImage(ctx context.Context, img v1.Image, refs []string, p *progress) (*Image, error) {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("image config: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(rawConfig)); h != m.Config.Digest {
		return nil, fmt.Errorf("config digest %s, manifest says %s: %w", h, m.Config.Digest, errdefs.ErrInvalidArgument)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return nil, fmt.Errorf("image is for %s, not linux: %w", cfg.OS, errdefs.ErrInvalidArgument)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("manifest has %d layers, config %d diffIDs: %w", len(m.Layers), len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != len(m.Layers) {
		return nil, fmt.Errorf("image has %d layers, manifest %d: %w", len(layers), len(m.Layers), errdefs.ErrInvalidArgument)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.jobs)
	for i, l := range layers {
		desc, diffID := m.Layers[i], cfg.RootFS.DiffIDs[i]
		if desc.Digest.Algorithm != "sha256" || diffID.Algorithm != "sha256" {
			return nil, fmt.Errorf("layer %s: only sha256 digests are supported: %w", desc.Digest, errdefs.ErrInvalidArgument)
		}
		g.Go(func() error { return s.ensureLayer(gctx, l, desc, diffID, p) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	if _, err := s.writeBlob(rawConfig); err != nil {
		return nil, err
	}
	digest, err := s.writeBlob(rawManifest)
	if err != nil {
		return nil, err
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	desc := v1.Descriptor{
		MediaType: mt, Digest: digest, Size: int64(len(rawManifest)),
		Platform: &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
	}
	if err := s.nameImage(ctx, desc, refs); err != nil {
		return nil, err
	}
	p.emit(Event{Phase: PhaseDone})
	return s.imageByDigest(digest)
}

// nameImage records the manifest desc in index.json under each of refs (a
// tag moves: whatever it named before is dropped), or unnamed when refs is
// empty and the index does not list it yet.
func (s *store) nameImage(ctx context.Context, desc v1.Descriptor, refs []string) error {
	return s.updateIndex(ctx, func(idx *v1.IndexManifest) error {
		if len(refs) == 0 && !slices.ContainsFunc(idx.Manifests, func(d v1.Descriptor) bool { return d.Digest == desc.Digest }) {
			idx.Manifests = append(idx.Manifests, desc)
		}
		for _, ref := range refs {
			idx.Manifests = slices.DeleteFunc(idx.Manifests, func(d v1.Descriptor) bool {
				return d.Annotations[refAnnotation] == ref || (d.Digest == desc.Digest && d.Annotations[refAnnotation] == "")
			})
			named := desc
			named.Annotations = map[string]string{refAnnotation: ref}
			idx.Manifests = append(idx.Manifests, named)
		}
		return nil
	})
}

// imageByDigest builds the Image for a manifest digest from the layout.
func (s *store) imageByDigest(digest v1.Hash) (*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	img, _, err := s.describe(idx, digest)
	return img, err
}

// describe reads the manifest and config of digest; refs come from idx.
func (s *store) describe(idx *v1.IndexManifest, digest v1.Hash) (*Image, *v1.ConfigFile, error) {
	raw, err := s.readBlob(digest)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("image %s: manifest missing: %w", digest, errdefs.ErrNotFound)
		}
		return nil, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: manifest: %w", digest, err)
	}
	rawCfg, err := s.readBlob(m.Config.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: config: %w", digest, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: config: %w", digest, err)
	}
	img := &Image{Refs: []string{}, Digest: digest.String(), ID: m.Config.Digest.String(), Created: cfg.Created.Time}
	if cfg.Architecture != "" {
		img.Platform = cfg.OS + "/" + cfg.Architecture
		if cfg.Variant != "" {
			img.Platform += "/" + cfg.Variant
		}
	}
	for _, d := range idx.Manifests {
		if r := d.Annotations[refAnnotation]; d.Digest == digest && r != "" {
			img.Refs = append(img.Refs, r)
		}
	}
	slices.Sort(img.Refs)
	for i, l := range m.Layers {
		var diffID v1.Hash
		if i < len(cfg.RootFS.DiffIDs) {
			diffID = cfg.RootFS.DiffIDs[i]
		}
		layer := Layer{Digest: l.Digest.String(), DiffID: diffID.String(), MediaType: string(l.MediaType), Size: l.Size}
		if meta, err := s.readLayerMeta(diffID); err == nil {
			layer.Unpacked, layer.Present = meta.Unpacked, true
		}
		img.Size += layer.Unpacked
		img.CompressedSize += l.Size
		img.Layers = append(img.Layers, layer)
	}
	return img, cfg, nil
}

func (s *store) List(ctx context.Context) ([]*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	seen := map[v1.Hash]bool{}
	var out []*Image
	for _, d := range idx.Manifests {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		img, _, err := s.describe(idx, d.Digest)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	slices.SortStableFunc(out, func(a, b *Image) int { return b.Created.Compare(a.Created) })
	return out, nil
}

func (s *store) Get(ctx context.Context, ref string) (*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	d, err := s.resolve(idx, ref)
	if err != nil {
		return nil, err
	}
	img, _, err := s.describe(idx, d)
	return img, err
}

// resolve finds the manifest digest ref names: an exact stored reference,
// the normalized form of one (busybox -> index.docker.io/library/busybox:latest),
// a manifest or config digest, or a unique prefix of either.
func (s *store) resolve(idx *v1.IndexManifest, ref string) (v1.Hash, error) {
	if ref == "" {
		return v1.Hash{}, fmt.Errorf("image ref: empty: %w", errdefs.ErrInvalidArgument)
	}
	byName := func(n string) (v1.Hash, bool) {
		for _, d := range idx.Manifests {
			if d.Annotations[refAnnotation] == n {
				return d.Digest, true
			}
		}
		return v1.Hash{}, false
	}
	if h, ok := byName(ref); ok {
		return h, nil
	}
	if r, err := name.ParseReference(ref); err == nil {
		if h, ok := byName(r.Name()); ok {
			return h, nil
		}
		if dr, ok := r.(name.Digest); ok {
			ref = dr.DigestStr() // repo@sha256:...: fall through to digest matching
		}
	}
	hexPart := strings.TrimPrefix(ref, "sha256:")
	if len(hexPart) < 4 || len(hexPart) > 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return v1.Hash{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	var match []v1.Hash
	for _, d := range idx.Manifests {
		if slices.Contains(match, d.Digest) {
			continue
		}
		ok := strings.HasPrefix(d.Digest.Hex, hexPart)
		if !ok {
			if raw, err := s.readBlob(d.Digest); err == nil {
				if m, err := v1.ParseManifest(bytes.NewReader(raw)); err == nil {
					ok = strings.HasPrefix(m.Config.Digest.Hex, hexPart)
				}
			}
		}
		if ok {
			match = append(match, d.Digest)
		}
	}
	switch len(match) {
	case 0:
		// Content no tag names any more but a lease kept (a pod's image
		// removed while it runs) is still reachable by its full digest.
		if h, err := v1.NewHash("sha256:" + hexPart); err == nil && s.isSmallBlob(h) {
			if raw, err := s.readBlob(h); err == nil {
				if _, err := v1.ParseManifest(bytes.NewReader(raw)); err == nil {
					return h, nil
				}
			}
		}
		return v1.Hash{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	case 1:
		return match[0], nil
	}
	return v1.Hash{}, fmt.Errorf("image %q: prefix matches %d images: %w", ref, len(match), errdefs.ErrInvalidArgument)
}

func (s *store) RootFS(ctx context.Context, ref string) (*RootFS, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	d, err := s.resolve(idx, ref)
	if err != nil {
		return nil, err
	}
	img, cfg, err := s.describe(idx, d)
	if err != nil {
		return nil, err
	}
	out := &RootFS{Image: img, Config: cfg, Size: img.Size}
	for _, l := range img.Layers {
		h, err := v1.NewHash(l.DiffID)
		if err != nil || !l.Present {
			return nil, fmt.Errorf("image %q: layer %s is not unpacked (pull the image again): %w", ref, l.DiffID, errdefs.ErrNotFound)
		}
		out.LayerDirs = append(out.LayerDirs, s.layerFS(h))
	}
	return out, nil
}

// normalizeRef is the stored form of a user's reference, or "" if it is not one.
func normalizeRef(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.Name()
}

// isSmallBlob reports whether h is a blob small enough to be a manifest,
// so that probing a digest never reads a layer into memory.
func (s *store) isSmallBlob(h v1.Hash) bool {
	fi, err := os.Stat(s.blobPath(h))
	return err == nil && fi.Size() <= 4<<20
}
