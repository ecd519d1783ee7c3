package testimage

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is go-containerregistry's in-memory registry on 127.0.0.1.
type Registry struct {
	// Host is 127.0.0.1:PORT.
	Host string
	srv  *httptest.Server
}

// NewRegistry starts a registry. wrap, if not nil, wraps its handler, to
// count requests or inject faults.
func NewRegistry(wrap func(http.Handler) http.Handler) *Registry {
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	return &Registry{Host: srv.Listener.Addr().String(), srv: srv}
}

// StartRegistry is NewRegistry closed at the end of the test.
func StartRegistry(t testing.TB, wrap func(http.Handler) http.Handler) *Registry {
	t.Helper()
	r := NewRegistry(wrap)
	t.Cleanup(r.Close)
	return r
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Ref is the full reference for repoTag ("name:tag") in this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// Push uploads img as repoTag and returns its full reference.
func (r *Registry) Push(ctx context.Context, repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return "", err
	}
	return ref.Name(), nil
}

// PushIndex uploads idx (a multi-platform index) as repoTag.
func (r *Registry) PushIndex(ctx context.Context, repoTag string, idx v1.ImageIndex) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return "", err
	}
	return ref.Name(), nil
}

var blobPath = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)

// BlobCounter counts blob GETs by digest.
type BlobCounter struct {
	mu sync.Mutex
	n  map[string]int
}

// Wrap is a handler wrapper for NewRegistry.
func (c *BlobCounter) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if m := blobPath.FindStringSubmatch(req.URL.Path); m != nil && req.Method == http.MethodGet {
			c.mu.Lock()
			if c.n == nil {
				c.n = map[string]int{}
			}
			c.n[m[1]]++
			c.mu.Unlock()
		}
		h.ServeHTTP(w, req)
	})
}

// Count is the number of GETs of digest.
func (c *BlobCounter) Count(digest string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[digest]
}

// Total is the number of blob GETs.
func (c *BlobCounter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, n := range c.n {
		t += n
	}
	return t
}

// Reset forgets the counts.
func (c *BlobCounter) Reset() {
	c.mu.Lock()
	c.n = nil
	c.mu.Unlock()
}

// CutBlobs is a fault: while armed, each blob GET whose digest matches
// (any if digest is "") sends after bytes of the body and then drops the
// connection. Use with NewRegistry's wrap.
type CutBlobs struct {
	mu     sync.Mutex
	armed  bool
	Digest string
	After  int64
	cuts   int
}

// Arm turns the fault on or off.
func (c *CutBlobs) Arm(on bool) {
	c.mu.Lock()
	c.armed = on
	c.mu.Unlock()
}

// Cuts is how many responses were cut.
func (c *CutBlobs) Cuts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cuts
}

// Wrap is a handler wrapper for NewRegistry.
func (c *CutBlobs) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m := blobPath.FindStringSubmatch(req.URL.Path)
		c.mu.Lock()
		cut := c.armed && m != nil && req.Method == http.MethodGet && (c.Digest == "" || c.Digest == m[1])
		if cut {
			c.cuts++
		}
		c.mu.Unlock()
		if !cut {
			h.ServeHTTP(w, req)
			return
		}
		h.ServeHTTP(&cutWriter{ResponseWriter: w, left: c.After}, req)
	})
}

type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.left {
		n, _ := w.ResponseWriter.Write(p[:w.left])
		w.left = 0
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		_ = n
		panic(http.ErrAbortHandler) // net/http closes the connection mid-body
	}
	w.left -= int64(len(p))
	return w.ResponseWriter.Write(p)
}
