package imagestore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// containerdNameAnnotation carries a full reference in layouts written by
// containerd and by `docker save` since Docker 25.
const containerdNameAnnotation = "io.containerd.image.name"

func (s *store) Import(ctx context.Context, path string, opts ...PullOption) ([]*Image, error) {
	po, err := applyPullOptions(opts)
	if err != nil {
		return nil, err
	}
	p := &progress{fn: po.progress, ref: path}
	lk, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()

	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("import %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	var imgs []*Image
	if fi.IsDir() {
		imgs, err = s.importLayout(ctx, path, po, p)
	} else {
		imgs, err = s.importTar(ctx, path, po, p)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return imgs, nil
}

// importTar tells a `docker save` tarball (manifest.json) from a tar of an
// OCI layout (oci-layout, index.json). Docker 25+ writes both: the
// docker manifest.json is preferred for its RepoTags.
func (s *store) importTar(ctx context.Context, path string, po pullOptions, p *progress) ([]*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	var hasManifest, hasLayout bool
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("not a tar archive: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "manifest.json":
			hasManifest = true
		case "oci-layout":
			hasLayout = true
		}
	}
	f.Close()
	switch {
	case hasManifest:
		return s.importDockerSave(ctx, path, po, p)
	case hasLayout:
		tmp, err := s.tempDir("import")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		// The same hardened extractor as for layers: an archive is input.
		if _, err := unpackTar(ctx, f, tmp, unpackLimits{maxEntry: s.opts.maxLayer, maxLayer: 0}); err != nil {
			return nil, err
		}
		return s.importLayout(ctx, tmp, po, p)
	}
	return nil, fmt.Errorf("neither a docker save tarball (manifest.json) nor an OCI layout (oci-layout): %w", errdefs.ErrInvalidArgument)
}

func (s *store) importDockerSave(ctx context.Context, path string, po pullOptions, p *progress) ([]*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	mf, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("manifest.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []*Image
	for i, d := range mf {
		var refs []string
		var tag *name.Tag
		for _, t := range d.RepoTags {
			nt, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("manifest.json: tag %q: %v: %w", t, err, errdefs.ErrInvalidArgument)
			}
			refs = append(refs, nt.Name())
			if tag == nil {
				tag = &nt
			}
		}
		if tag == nil && len(mf) > 1 {
			return nil, fmt.Errorf("manifest.json: image %d has no RepoTags and is not the only one: %w", i, errdefs.ErrInvalidArgument)
		}
		if len(refs) == 0 && po.ref != "" {
			refs = []string{normalizeRef(po.ref)}
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return nil, fmt.Errorf("image %d: %v: %w", i, err, errdefs.ErrInvalidArgument)
		}
		stored, err := s.storeImage(ctx, img, refs, p)
		if err != nil {
			return nil, err
		}
		out = append(out, stored)
	}
	return out, nil
}

func (s *store) importLayout(ctx context.Context, dir string, po pullOptions, p *progress) ([]*Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout index.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	var out []*Image
	for _, d := range im.Manifests {
		img, err := pickImage(idx, d)
		if err != nil {
			return nil, err
		}
		ref, err := layoutRef(d, po.ref)
		if err != nil {
			return nil, err
		}
		var refs []string
		if ref != "" {
			refs = []string{ref}
		}
		stored, err := s.storeImage(ctx, img, refs, p)
		if err != nil {
			return nil, err
		}
		out = append(out, stored)
	}
	return out, nil
}

// pickImage returns the image d names, choosing our platform from an index.
func pickImage(idx v1.ImageIndex, d v1.Descriptor) (v1.Image, error) {
	switch {
	case d.MediaType.IsImage():
		return idx.Image(d.Digest)
	case d.MediaType.IsIndex():
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return nil, err
		}
		for _, c := range cm.Manifests {
			if c.MediaType.IsImage() && (c.Platform == nil || c.Platform.Satisfies(Platform)) {
				return child.Image(c.Digest)
			}
		}
		return nil, fmt.Errorf("index %s: no %s image: %w", d.Digest, Platform, errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("descriptor %s: unsupported media type %q: %w", d.Digest, d.MediaType, errdefs.ErrInvalidArgument)
}

// layoutRef names an imported layout entry. A full reference is used as
// is; a bare tag ("latest", as skopeo writes) goes with the repository of
// fallback if given, and the entry stays untagged otherwise.
func layoutRef(d v1.Descriptor, fallback string) (string, error) {
	n := d.Annotations[containerdNameAnnotation]
	if n == "" {
		n = d.Annotations[refAnnotation]
	}
	if strings.ContainsAny(n, "/:@") {
		r, err := name.ParseReference(n)
		if err != nil {
			return "", fmt.Errorf("ref name %q: %v: %w", n, err, errdefs.ErrInvalidArgument)
		}
		return r.Name(), nil
	}
	if fallback == "" {
		return "", nil
	}
	r, err := name.ParseReference(fallback)
	if err != nil {
		return "", fmt.Errorf("ref %q: %v: %w", fallback, err, errdefs.ErrInvalidArgument)
	}
	if n == "" {
		return r.Name(), nil
	}
	t, err := name.NewTag(r.Context().Name() + ":" + n)
	if err != nil {
		return "", fmt.Errorf("ref name %q: %v: %w", n, err, errdefs.ErrInvalidArgument)
	}
	return t.Name(), nil
}
