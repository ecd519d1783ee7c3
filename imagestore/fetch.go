package imagestore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// layerMeta is root/layers/<h>/meta.json, written before the layer
// directory is renamed into place: a layer directory exists only complete.
type layerMeta struct {
	DiffID    string    `json:"diffID"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType,omitempty"`
	Size      int64     `json:"size"`     // compressed
	Unpacked  int64     `json:"unpacked"` // bytes of file content
	Created   time.Time `json:"created"`
}

func (s *store) readLayerMeta(diffID v1.Hash) (*layerMeta, error) {
	b, err := os.ReadFile(filepath.Join(s.layerPath(diffID), "meta.json"))
	if err != nil {
		return nil, err
	}
	var m layerMeta
	if err := fileutil.UnmarshalStrict(b, &m); err != nil {
		return nil, fmt.Errorf("layer %s meta: %w", diffID, err)
	}
	return &m, nil
}

func (s *store) hasLayer(diffID v1.Hash) bool {
	_, err := os.Stat(filepath.Join(s.layerPath(diffID), "meta.json"))
	return err == nil
}

// sourceError marks a failure reading from where the layer comes from (the
// registry, a tarball), as opposed to a failure of its content.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// countingReader reports download progress and tags source errors.
type countingReader struct {
	r     io.Reader
	n     int64
	last  int64
	emit  func(done int64)
	phase Phase
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n-c.last >= 1<<20 || (err != nil && c.n != c.last) {
		c.last = c.n
		c.emit(c.n)
	}
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// ensureLayer makes sure the blob desc and the unpacked layer diffID exist.
// Concurrent callers in this process share one fetch; other processes wait
// on the layer's file lock and then find it done.
func (s *store) ensureLayer(ctx context.Context, l v1.Layer, desc v1.Descriptor, diffID v1.Hash, p *progress) error {
	key := desc.Digest.String() + "/" + diffID.String()
	for {
		ran, cached := false, false
		_, err, _ := s.flights.Do(key, func() (any, error) {
			ran = true
			var err error
			cached, err = s.ensureLayerLocked(ctx, l, desc, diffID, p)
			return nil, err
		})
		// Another caller's cancelled context ended the shared fetch: try
		// again with ours rather than fail a pull nobody cancelled.
		if err != nil && !ran && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		if err == nil && !cached {
			p.emit(Event{Layer: desc.Digest.String(), Phase: PhaseDone, Done: desc.Size, Total: desc.Size})
		}
		return err
	}
}

func (s *store) ensureLayerLocked(ctx context.Context, l v1.Layer, desc v1.Descriptor, diffID v1.Hash, p *progress) (cached bool, err error) {
	lk, err := s.lock(ctx, "layer-"+diffID.Hex+".lock", false)
	if err != nil {
		return false, err
	}
	defer lk.Unlock()
	id := desc.Digest.String()
	haveLayer, haveBlob := s.hasLayer(diffID), s.hasBlob(desc.Digest)
	if haveLayer && haveBlob {
		p.emit(Event{Layer: id, Phase: PhaseCached, Done: desc.Size, Total: desc.Size})
		return true, nil
	}
	var src io.ReadCloser
	phase := PhaseDownloading
	if haveBlob {
		// Content is here (an earlier import, or GC kept the blob): unpack locally.
		src, err = os.Open(s.blobPath(desc.Digest))
		phase = PhaseUnpacking
	} else {
		src, err = l.Compressed()
		if err != nil {
			err = &sourceError{err}
		}
	}
	if err != nil {
		return false, fmt.Errorf("layer %s: %w", id, err)
	}
	defer src.Close()
	p.emit(Event{Layer: id, Phase: phase, Total: desc.Size})
	if err := s.fetchLayer(ctx, src, desc, diffID, !haveBlob, !haveLayer, phase, p); err != nil {
		return false, fmt.Errorf("layer %s: %w", id, err)
	}
	return false, nil
}

// fetchLayer streams one compressed layer: the bytes go at once into the
// blob file and through a decompressor into the unpacker, and both the
// digest and the diffID are checked at the end. Everything is written under
// root/tmp and renamed into place only once verified.
func (s *store) fetchLayer(ctx context.Context, src io.Reader, desc v1.Descriptor, diffID v1.Hash, saveBlob, unpack bool, phase Phase, p *progress) error {
	tmp, err := s.tempDir("layer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	cr := &countingReader{r: src, emit: func(n int64) {
		p.emit(Event{Layer: desc.Digest.String(), Phase: phase, Done: n, Total: desc.Size})
	}}
	dh := sha256.New()
	var sink io.Writer = dh
	var blob *os.File
	if saveBlob {
		if blob, err = os.Create(filepath.Join(tmp, "blob")); err != nil {
			return err
		}
		defer blob.Close()
		sink = io.MultiWriter(blob, dh)
	}
	compressed := bufio.NewReaderSize(io.TeeReader(cr, sink), 1<<20)

	var stats unpackStats
	if unpack {
		fsDir := filepath.Join(tmp, "layer", "fs")
		if err := os.MkdirAll(fsDir, 0o755); err != nil {
			return err
		}
		stats, err = s.unpackStream(ctx, compressed, fsDir, diffID)
		if err != nil {
			return s.blame(err, cr, dh, desc)
		}
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return s.blame(err, cr, dh, desc)
	}
	if err := checkDigest(dh, desc); err != nil {
		return err
	}
	if desc.Size > 0 && cr.n != desc.Size {
		return fmt.Errorf("size %d, manifest says %d: %w", cr.n, desc.Size, errdefs.ErrInvalidArgument)
	}

	if saveBlob {
		if err := blob.Close(); err != nil {
			return err
		}
		if err := os.Rename(blob.Name(), s.blobPath(desc.Digest)); err != nil {
			return err
		}
	}
	if unpack {
		meta, _ := json.Marshal(layerMeta{
			DiffID: diffID.String(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType),
			Size: cr.n, Unpacked: stats.Size, Created: time.Now().UTC(),
		})
		dir := filepath.Join(tmp, "layer")
		if err := os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o644); err != nil {
			return err
		}
		// The layer's root stays 0755 whatever the tar said: the fs/
		// directory below it is the one the tar describes.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		if err := os.Rename(dir, s.layerPath(diffID)); err != nil {
			return err
		}
	}
	return nil
}

// blame classifies a failed stream: a read error from the source is the
// registry's (unavailable) unless all bytes arrived and the digest is wrong,
// which is the content's fault (invalid argument). Other errors are the
// content's already.
func (s *store) blame(err error, cr *countingReader, dh hash.Hash, desc v1.Descriptor) error {
	var se *sourceError
	if !errors.As(err, &se) {
		return err
	}
	if desc.Size > 0 && cr.n == desc.Size {
		if derr := checkDigest(dh, desc); derr != nil {
			return derr
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("reading blob after %d bytes: %w: %w", cr.n, se.err, errdefs.ErrUnavailable)
}

func checkDigest(h hash.Hash, desc v1.Descriptor) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != desc.Digest.Hex {
		return fmt.Errorf("digest mismatch: got sha256:%s, want %s: %w", got, desc.Digest, errdefs.ErrInvalidArgument)
	}
	return nil
}

// unpackStream decompresses r (gzip, zstd or plain tar, told by magic
// bytes) into dir and checks the uncompressed digest against diffID.
func (s *store) unpackStream(ctx context.Context, r *bufio.Reader, dir string, diffID v1.Hash) (unpackStats, error) {
	magic, _ := r.Peek(4)
	var plain io.Reader = r
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return unpackStats{}, contentError("gzip", err)
		}
		defer zr.Close()
		plain = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return unpackStats{}, contentError("zstd", err)
		}
		defer zr.Close()
		plain = zr
	}
	xh := sha256.New()
	limited := &limitedReader{r: io.TeeReader(plain, xh), max: s.opts.maxLayer}
	stats, err := unpackTar(ctx, limited, dir, unpackLimits{maxEntry: s.opts.maxEntry, maxLayer: s.opts.maxLayer})
	if err != nil {
		return stats, err
	}
	// The tar ends before the stream does (zero blocks, padding): the
	// diffID covers all of it.
	if _, err := io.Copy(io.Discard, limited); err != nil {
		if errors.Is(err, errLayerTooLarge) {
			return stats, fmt.Errorf("layer larger than %d bytes: %w", s.opts.maxLayer, errdefs.ErrInvalidArgument)
		}
		return stats, contentError("decompressing layer", err)
	}
	if got := hex.EncodeToString(xh.Sum(nil)); got != diffID.Hex {
		return stats, fmt.Errorf("diffID mismatch: got sha256:%s, want %s: %w", got, diffID, errdefs.ErrInvalidArgument)
	}
	return stats, nil
}
