package imagestore

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Store holds images on disk. All methods are safe for concurrent use, also
// by several processes sharing one root.
type Store interface {
	// Pull fetches ref (tag or digest reference) and unpacks its layers.
	Pull(ctx context.Context, ref string, opts ...PullOption) (*Image, error)
	// Import loads images from a `docker save` tarball, an OCI image layout
	// directory or a tar of one.
	Import(ctx context.Context, path string, opts ...PullOption) ([]*Image, error)
	// List returns every image, newest first.
	List(ctx context.Context) ([]*Image, error)
	// Get resolves a tag reference, a digest (manifest or config) or a
	// unique prefix of an image ID.
	Get(ctx context.Context, ref string) (*Image, error)
	// Remove untags ref; given a digest or ID it removes every tag of that
	// image. Content stays until GC. It returns the references removed.
	Remove(ctx context.Context, ref string) ([]string, error)
	// GC deletes blobs and layer directories that no image and no lease references.
	GC(ctx context.Context) (*GCResult, error)
	// RootFS gives what a rootfs needs: layer directories (lowest first),
	// the image config and the unpacked size.
	RootFS(ctx context.Context, ref string) (*RootFS, error)
	// AddLease records that holder (a pod) uses image, so GC keeps its
	// content even when the image is removed. It replaces holder's lease.
	AddLease(ctx context.Context, holder, image string) (*Lease, error)
	// RemoveLease drops holder's lease; a missing lease is not an error.
	RemoveLease(ctx context.Context, holder string) error
	// Leases lists the leases.
	Leases(ctx context.Context) ([]*Lease, error)
}

// Image describes a stored image.
type Image struct {
	Refs           []string  `json:"refs"`
	Digest         string    `json:"digest"` // manifest digest
	ID             string    `json:"id"`     // config digest, as Docker shows it
	Created        time.Time `json:"created,omitzero"`
	Platform       string    `json:"platform,omitempty"`
	Size           int64     `json:"size"`           // unpacked bytes of all layers
	CompressedSize int64     `json:"compressedSize"` // bytes of layer blobs
	Layers         []Layer   `json:"layers"`
}

// ShortID is the first 12 hex digits of the ID.
func (i *Image) ShortID() string {
	h, err := v1.NewHash(i.ID)
	if err != nil || len(h.Hex) < 12 {
		return i.ID
	}
	return h.Hex[:12]
}

// Layer is one layer of an image.
type Layer struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`         // compressed blob bytes
	Unpacked  int64  `json:"unpackedSize"` // bytes of file content once unpacked
	Present   bool   `json:"present"`      // unpacked directory exists
}

// RootFS is what the rootfs code mounts.
type RootFS struct {
	Image     *Image         `json:"image"`
	LayerDirs []string       `json:"layerDirs"` // lowest first
	Config    *v1.ConfigFile `json:"config"`
	Size      int64          `json:"size"`
}

// Lease keeps an image's content from GC while holder uses it.
type Lease struct {
	Holder  string    `json:"holder"`
	Image   string    `json:"image"` // manifest digest
	Created time.Time `json:"created"`
}

// GCResult says what GC freed.
type GCResult struct {
	Blobs  []string `json:"blobs"`
	Layers []string `json:"layers"` // diffIDs
	Bytes  int64    `json:"bytes"`
}

// Phase is a step of fetching one layer.
type Phase string

const (
	PhaseResolving   Phase = "resolving"
	PhaseDownloading Phase = "downloading"
	PhaseUnpacking   Phase = "unpacking"
	PhaseDone        Phase = "done"
	PhaseCached      Phase = "cached"
)

// Event reports progress of a pull or import. Layer is empty for events
// about the image as a whole. Done and Total count compressed bytes.
type Event struct {
	Ref   string `json:"ref"`
	Layer string `json:"layer,omitempty"`
	Phase Phase  `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// store is the Store on a directory:
//
//	root/images/      OCI image layout (oci-layout, index.json, blobs/sha256/)
//	root/layers/<h>/  one unpacked layer, h = diffID hex: fs/ and meta.json
//	root/leases/      one JSON file per holder
//	root/locks/       flock files: store.lock, index.lock, one per layer
//	root/tmp/         work in progress; renamed into place when complete
type store struct {
	root string
	opts options

	flights     singleflight.Group
	transport   http.RoundTripper
	httpMirrors map[string]bool // mirror hosts configured with http://
}

var _ Store = (*store)(nil)

// New opens (creating if needed) the store at root.
func New(ctx context.Context, root string, opts ...Option) (Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if root == "" {
		return nil, fmt.Errorf("store root: empty: %w", errdefs.ErrInvalidArgument)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &store{root: root, opts: o}
	s.initTransport()
	for _, d := range []string{s.blobDir(), s.layersDir(), s.leaseDir(), s.lockDir(), s.tmpRoot()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := s.initLayout(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) imagesDir() string { return filepath.Join(s.root, "images") }
func (s *store) blobDir() string   { return filepath.Join(s.root, "images", "blobs", "sha256") }
func (s *store) layersDir() string { return filepath.Join(s.root, "layers") }
func (s *store) leaseDir() string  { return LeaseDir(s.root) }

// LeaseDir is where a store rooted at root keeps its leases, for a caller
// that owns root to clear what a killed writer left there.
func LeaseDir(root string) string { return filepath.Join(root, "leases") }
func (s *store) lockDir() string  { return filepath.Join(s.root, "locks") }
func (s *store) tmpRoot() string  { return filepath.Join(s.root, "tmp") }

func (s *store) blobPath(h v1.Hash) string  { return filepath.Join(s.blobDir(), h.Hex) }
func (s *store) layerPath(h v1.Hash) string { return filepath.Join(s.layersDir(), h.Hex) }

// LayerDir is the directory holding the unpacked tree of a layer.
func (s *store) layerFS(h v1.Hash) string { return filepath.Join(s.layerPath(h), "fs") }

// tempDir makes a fresh directory under root/tmp for one unit of work.
func (s *store) tempDir(kind string) (string, error) {
	return os.MkdirTemp(s.tmpRoot(), fmt.Sprintf("%s-%d-", kind, os.Getpid()))
}

// progress serializes events to one callback.
type progress struct {
	mu  sync.Mutex
	fn  func(Event)
	ref string
}

func (p *progress) emit(e Event) {
	if p == nil || p.fn == nil {
		return
	}
	e.Ref = p.ref
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(e)
}
