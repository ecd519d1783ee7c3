package rootfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Spares keeps made storage images ready, one per size in use, so a pod's
// capped storage is a rename instead of a mkfs.ext4 on its start path
// (15-25 ms here, most of the node's own share of a pod start). Spares are
// complete images (MakeStorageImage renames last); dir must be on the same
// filesystem as the pod directories, or every take misses and Mount makes
// the image itself.
type Spares struct {
	dir   string
	delay time.Duration // before a refill, so it does not compete with a booting pod

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	filling map[int64]bool
}

// NewSpares keeps spare images under dir. Leftover half-made images of an
// earlier process are removed; finished ones are kept for use.
func NewSpares(dir string) (*Spares, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*", "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Spares{dir: dir, delay: 500 * time.Millisecond, ctx: ctx, cancel: cancel, filling: map[int64]bool{}}, nil
}

func (s *Spares) sizeDir(size int64) string {
	return filepath.Join(s.dir, strconv.FormatInt(size, 10))
}

// take moves a spare image of size bytes to dst; false when there is none.
func (s *Spares) take(size int64, dst string) bool {
	ents, err := os.ReadDir(s.sizeDir(size))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".img") {
			continue
		}
		// Rename is the claim: of two takers of one spare, one wins.
		if os.Rename(filepath.Join(s.sizeDir(size), e.Name()), dst) == nil {
			return true
		}
	}
	return false
}

// refill makes one spare of size bytes in the background, unless one
// exists or is being made.
func (s *Spares) refill(size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.filling[size] || s.ctx.Err() != nil {
		return
	}
	s.filling[size] = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.filling, size)
			s.mu.Unlock()
		}()
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(s.delay):
		}
		if s.count(size) > 0 {
			return
		}
		dir := s.sizeDir(size)
		if os.MkdirAll(dir, 0o700) != nil {
			return
		}
		var b [8]byte
		_, _ = rand.Read(b[:])
		// Best effort: a failure here shows again, with its error, when a
		// pod makes its own image.
		_ = MakeStorageImage(s.ctx, filepath.Join(dir, hex.EncodeToString(b[:])+".img"), size)
	}()
}

func (s *Spares) count(size int64) int {
	m, _ := filepath.Glob(filepath.Join(s.sizeDir(size), "*.img"))
	return len(m)
}

// Close stops refills and waits for the one in flight, if any.
func (s *Spares) Close() {
	s.cancel()
	s.wg.Wait()
}
