package portfwd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// FileStore keeps allocations in one JSON file, for standalone use and
// tests. Writes go to a temporary file that is fsynced and renamed over the
// old one, so readers never see half a file; an flock on path+".lock"
// serialises processes sharing the file.
type FileStore struct {
	path string
	mu   sync.Mutex // flock does not exclude goroutines of one process sharing an fd's owner
}

var _ AllocationStore = (*FileStore)(nil)

// NewFileStore returns a store at path; its directory must exist. A missing
// file is an empty store.
func NewFileStore(path string) (*FileStore, error) {
	if path == "" || !filepath.IsAbs(path) {
		return nil, fmt.Errorf("portfwd: store path %q must be absolute: %w", path, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("portfwd: store directory %s: %w", filepath.Dir(path), errdefs.ErrNotFound)
	}
	return &FileStore{path: path}, nil
}

// fileFormat is the file's shape; version lets it change later.
type fileFormat struct {
	Version     int          `json:"version"`
	Allocations []Allocation `json:"allocations"`
}

const fileVersion = 1

func (s *FileStore) Load(ctx context.Context) ([]Allocation, error) {
	var out []Allocation
	err := s.locked(ctx, syscall.LOCK_SH, func() error {
		var err error
		out, err = s.read()
		return err
	})
	return out, err
}

func (s *FileStore) Save(ctx context.Context, podID string, allocs []Allocation) error {
	for _, a := range allocs {
		if a.PodID != podID {
			return fmt.Errorf("portfwd: save pod %s: allocation for pod %s: %w", podID, a.PodID, errdefs.ErrInvalidArgument)
		}
	}
	return s.update(ctx, podID, allocs)
}

func (s *FileStore) Delete(ctx context.Context, podID string) error {
	return s.update(ctx, podID, nil)
}

func (s *FileStore) update(ctx context.Context, podID string, allocs []Allocation) error {
	return s.locked(ctx, syscall.LOCK_EX, func() error {
		all, err := s.read()
		if err != nil {
			return err
		}
		kept := all[:0]
		for _, a := range all {
			if a.PodID != podID {
				kept = append(kept, a)
			}
		}
		kept = append(kept, allocs...)
		sort.SliceStable(kept, func(i, j int) bool { return kept[i].PodID < kept[j].PodID })
		return s.write(kept)
	})
}

func (s *FileStore) locked(ctx context.Context, how int, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("portfwd: store lock: %w", err)
	}
	defer lf.Close() // closing drops the flock
	if err := syscall.Flock(int(lf.Fd()), how); err != nil {
		return fmt.Errorf("portfwd: store lock %s: %w", lf.Name(), err)
	}
	return fn()
}

func (s *FileStore) read() ([]Allocation, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("portfwd: read store: %w", err)
	}
	var ff fileFormat
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ff); err != nil {
		return nil, fmt.Errorf("portfwd: decode store %s: %w: %w", s.path, err, errdefs.ErrInvalidArgument)
	}
	if ff.Version != fileVersion {
		return nil, fmt.Errorf("portfwd: store %s: version %d, want %d: %w", s.path, ff.Version, fileVersion, errdefs.ErrInvalidArgument)
	}
	return ff.Allocations, nil
}

func (s *FileStore) write(allocs []Allocation) error {
	if allocs == nil {
		allocs = []Allocation{}
	}
	b, err := json.MarshalIndent(fileFormat{Version: fileVersion, Allocations: allocs}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("portfwd: write store: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("portfwd: write store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("portfwd: write store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("portfwd: write store: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("portfwd: write store: %w", err)
	}
	// The rename is only durable once the directory is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("portfwd: write store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("portfwd: write store: sync dir: %w", err)
	}
	return nil
}
