package snapshots

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// Layout of one snapshot (names are part of the on-disk format):
//
//	dir/<key>/checkpoint/   runsc's image
//	dir/<key>/upper/        the pod's writable layer, overlay form
//	dir/<key>/run/          the pod's run directory (status, logs)
//	dir/<key>/meta.json     written last: its presence means the rest is whole
//	dir/.tmp-*/             a snapshot being written (removed at Open)
const (
	CheckpointDir = "checkpoint"
	UpperDir      = "upper"
	RunDir        = "run"
	metaFile      = "meta.json"
	tmpPrefix     = ".tmp-"
)

// Meta describes one complete snapshot.
type Meta struct {
	Key         string    `json:"key"`
	Template    string    `json:"template"`
	ImageDigest string    `json:"imageDigest"`
	SourcePod   string    `json:"sourcePod"`
	Bytes       int64     `json:"bytes"`
	CreatedAt   time.Time `json:"createdAt"`
	LastUsed    time.Time `json:"lastUsed"`
}

// Store is a directory of snapshots. Safe for concurrent use.
type Store struct {
	dir      string
	maxBytes int64 // 0: no cap
	mu       sync.Mutex
}

// Open returns the store in dir (made if missing) capped at maxBytes
// (0: uncapped) and removes snapshots a crash left half written.
func Open(dir string, maxBytes int64) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("snapshots: dir %q: must be absolute: %w", dir, errdefs.ErrInvalidArgument)
	}
	if maxBytes < 0 {
		return nil, fmt.Errorf("snapshots: maxBytes: must be >= 0, got %d: %w", maxBytes, errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return &Store{dir: dir, maxBytes: maxBytes}, nil
}

// ValidKey reports whether key can name a snapshot (hex, 16-64 characters).
func ValidKey(key string) error {
	if len(key) < 16 || len(key) > 64 || strings.Trim(key, "0123456789abcdef") != "" {
		return fmt.Errorf("snapshot key %q: must be 16-64 lower-case hex digits: %w", key, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Path is where part (CheckpointDir, UpperDir, RunDir) of snapshot key lives.
func (s *Store) Path(key, part string) string { return filepath.Join(s.dir, key, part) }

// Get returns the snapshot's facts and marks it used; a missing or
// half-written snapshot is ErrNotFound.
func (s *Store) Get(key string) (*Meta, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.read(key)
	if err != nil {
		return nil, err
	}
	m.LastUsed = time.Now().UTC()
	if err := s.write(filepath.Join(s.dir, key), m); err != nil {
		return nil, err
	}
	return m, nil
}

func (s *Store) read(key string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, key, metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("snapshot %s: meta.json: %w", key, err)
	}
	return &m, nil
}

func (s *Store) write(dir string, m *Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteAtomic(filepath.Join(dir, metaFile), b, 0o600)
}

// List returns every complete snapshot, most recently used first.
func (s *Store) List() ([]Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list()
}

func (s *Store) list() ([]Meta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []Meta
	for _, e := range ents {
		if !e.IsDir() || ValidKey(e.Name()) != nil {
			continue
		}
		if m, err := s.read(e.Name()); err == nil {
			out = append(out, *m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, nil
}

// Remove deletes snapshot key; a missing one is ErrNotFound. The mark
// goes first, so a crash half way leaves no snapshot that looks whole.
func (s *Store) Remove(key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(key)
}

func (s *Store) remove(key string) error {
	dir := filepath.Join(s.dir, key)
	if err := os.Remove(filepath.Join(dir, metaFile)); errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
		}
	} else if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// Pending is a snapshot being written: its parts go under Path, then
// Commit makes it visible (or Abort drops it).
type Pending struct {
	s   *Store
	dir string
	m   Meta
}

// Begin starts writing snapshot key.
func (s *Store) Begin(m Meta) (*Pending, error) {
	if err := ValidKey(m.Key); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.dir, tmpPrefix)
	if err != nil {
		return nil, err
	}
	return &Pending{s: s, dir: dir, m: m}, nil
}

// Path is where part of the pending snapshot is written.
func (p *Pending) Path(part string) string { return filepath.Join(p.dir, part) }

// Abort removes the pending snapshot.
func (p *Pending) Abort() { _ = os.RemoveAll(p.dir) }

// Commit records the snapshot (replacing one with the same key), then
// evicts the least recently used others until the store fits its cap.
// It returns the snapshot's facts and the keys evicted.
func (p *Pending) Commit() (*Meta, []string, error) {
	s := p.s
	p.m.Bytes = DirBytes(p.dir)
	p.m.CreatedAt = time.Now().UTC()
	p.m.LastUsed = p.m.CreatedAt
	if err := s.write(p.dir, &p.m); err != nil {
		p.Abort()
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	final := filepath.Join(s.dir, p.m.Key)
	if err := s.remove(p.m.Key); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		p.Abort()
		return nil, nil, err
	}
	if err := os.Rename(p.dir, final); err != nil {
		p.Abort()
		return nil, nil, err
	}
	evicted, err := s.evict(p.m.Key)
	return &p.m, evicted, err
}

// evict removes least recently used snapshots (never keep) until the
// total fits the cap.
func (s *Store) evict(keep string) ([]string, error) {
	if s.maxBytes == 0 {
		return nil, nil
	}
	all, err := s.list()
	if err != nil {
		return nil, err
	}
	var total int64
	for _, m := range all {
		total += m.Bytes
	}
	var out []string
	for i := len(all) - 1; i >= 0 && total > s.maxBytes; i-- {
		if all[i].Key == keep {
			continue
		}
		if err := s.remove(all[i].Key); err != nil {
			return out, err
		}
		total -= all[i].Bytes
		out = append(out, all[i].Key)
	}
	return out, nil
}

// DirBytes is the disk space the files under dir hold (allocated blocks).
func DirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += allocated(fi)
		}
		return nil
	})
	return n
}
