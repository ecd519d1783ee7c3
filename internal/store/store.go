package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// FileName is the store's file under the data root.
const FileName = "state.db"

// SchemaVersion is the layout this code reads and writes. Bump it with a
// migration in migrations whenever a bucket or record changes shape.
// Version 2 added port-sets (portfwd's allocations, which used to live in
// ports.json): a version 1 binary would neither see nor free them, so it
// must refuse the file rather than run beside it.
const SchemaVersion uint64 = 2

// Defaults.
const (
	DefaultLockTimeout = 2 * time.Second
	DefaultEventLimit  = 10000
)

var (
	bucketMeta     = []byte("meta")
	bucketPods     = []byte("pods")
	bucketPodNames = []byte("pod-names") // name -> id
	// bucketPorts held a per-port allocator's entries, which the node
	// never used; nothing reads or writes it, and it stays in allBuckets
	// so the schema need not change.
	bucketPorts      = []byte("ports")
	bucketPortOwners = []byte("port-owners") // host port -> podID/key (port sets)
	bucketSubnets    = []byte("subnets")     // podID -> CIDR
	bucketSubnetOwn  = []byte("subnet-owners")
	bucketEvents     = []byte("events")    // seq (8 bytes BE) -> Event JSON
	bucketPortSets   = []byte("port-sets") // podID -> JSON []PortBinding (schema 2)

	keySchema = []byte("schema")

	allBuckets = [][]byte{
		bucketMeta, bucketPods, bucketPodNames, bucketPorts,
		bucketPortOwners, bucketSubnets, bucketSubnetOwn, bucketEvents,
		bucketPortSets,
	}
)

// migrations[v] upgrades a schema v database to v+1, inside the open
// transaction, after every bucket of allBuckets exists.
var migrations = map[uint64]func(*bolt.Tx) error{
	// 1 -> 2: the port-sets bucket, which initSchema has just created.
	// Nothing to convert: port sets were kept outside the database.
	1: func(tx *bolt.Tx) error {
		if tx.Bucket(bucketPortSets) == nil {
			return fmt.Errorf("bucket %s missing", bucketPortSets)
		}
		return nil
	},
}

// ErrClosed is returned by every call on a closed Store.
var ErrClosed = fmt.Errorf("state store closed: %w", errdefs.ErrUnavailable)

// Store is the node's state database. It is safe for concurrent use; bbolt
// serializes writers, so the callbacks given to UpdatePod, TransitionWith
// and the allocators run inside the one write transaction and must be short.
type Store struct {
	db         *bolt.DB
	path       string
	log        *slog.Logger
	eventLimit uint64
	now        func() time.Time

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

type options struct {
	lockTimeout time.Duration
	eventLimit  int
	log         *slog.Logger
	now         func() time.Time
}

// Option configures Open.
type Option func(*options) error

// WithLockTimeout bounds how long Open waits for the file lock another
// process holds (a second daemon). d must be positive: bbolt's zero means
// wait forever, which would hang a second daemon silently.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("lock timeout %v: must be positive: %w", d, errdefs.ErrInvalidArgument)
		}
		o.lockTimeout = d
		return nil
	}
}

// WithEventLimit sets how many events the log keeps (the newest n); older
// ones are pruned in the transaction that appends. n must be positive.
func WithEventLimit(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("event limit %d: must be positive: %w", n, errdefs.ErrInvalidArgument)
		}
		o.eventLimit = n
		return nil
	}
}

// WithLogger sets the logger; the store is silent without one.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("logger: must not be nil: %w", errdefs.ErrInvalidArgument)
		}
		o.log = l
		return nil
	}
}

// WithClock replaces time.Now for record and event timestamps (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("clock: must not be nil: %w", errdefs.ErrInvalidArgument)
		}
		o.now = now
		return nil
	}
}

// Open opens (creating if needed) the state database at path, usually
// <data-root>/state.db. If another process holds it, Open fails after the
// lock timeout with ErrUnavailable. A database written by a newer schema
// is refused; an older one is migrated.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{
		lockTimeout: DefaultLockTimeout,
		eventLimit:  DefaultEventLimit,
		log:         slog.New(slog.DiscardHandler),
		now:         time.Now,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if path == "" {
		return nil, fmt.Errorf("state db path: required: %w", errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout, ctxBound := o.lockTimeout, false
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout, ctxBound = max(left, time.Millisecond), true
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state db %s: %w", path, err)
	}
	// NoSync stays off: every commit is fsynced before Update returns, which
	// is what "persisted before side effects are considered done" needs.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			if ctxBound {
				return nil, fmt.Errorf("state db %s: locked by another process, still waiting when the deadline passed: %w", path, context.DeadlineExceeded)
			}
			return nil, fmt.Errorf("state db %s: database locked by another process (is another pinacle-node serve running?): %w", path, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("state db %s: %w", path, err)
	}
	s := &Store{
		db:         db,
		path:       path,
		log:        o.log,
		eventLimit: uint64(o.eventLimit),
		now:        o.now,
		subs:       map[*Subscription]struct{}{},
		done:       make(chan struct{}),
	}
	if err := db.Update(s.initSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("state db %s: %w", path, err)
	}
	return s, nil
}

// ErrNewerSchema is returned by Open for a database written by a newer
// pinacle-node. It wraps errdefs.ErrConflict.
var ErrNewerSchema = fmt.Errorf("schema is newer than this binary supports; upgrade pinacle-node: %w", errdefs.ErrConflict)

func (s *Store) initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	v := uint64(0)
	if raw := meta.Get(keySchema); raw != nil {
		if len(raw) != 8 {
			return fmt.Errorf("schema version: corrupt (%d bytes)", len(raw))
		}
		v = binary.BigEndian.Uint64(raw)
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("version %d: %w (this binary: %d)", v, ErrNewerSchema, SchemaVersion)
	case v == 0: // fresh file
		v = SchemaVersion
	}
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	for ; v < SchemaVersion; v++ {
		m, ok := migrations[v]
		if !ok {
			return fmt.Errorf("no migration from schema %d", v)
		}
		if err := m(tx); err != nil {
			return fmt.Errorf("migrate schema %d to %d: %w", v, v+1, err)
		}
		s.log.Info("state db migrated", "from", v, "to", v+1)
	}
	return meta.Put(keySchema, u64(SchemaVersion))
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close stops every watcher (their Err is ErrClosed) and closes the file.
// It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	s.wg.Wait()
	return s.db.Close()
}

// txn is one write transaction plus what it did, so update can notify
// watchers after the commit.
type txn struct {
	*bolt.Tx
	s        *Store
	now      time.Time
	appended bool
}

// update runs fn in one write transaction. bbolt cannot abort a running
// transaction, so ctx is only checked before it starts; watchers are woken
// after the commit (and its fsync) succeeded.
func (s *Store) update(ctx context.Context, fn func(*txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var t *txn
	err := s.db.Update(func(tx *bolt.Tx) error {
		t = &txn{Tx: tx, s: s, now: s.now().UTC()}
		return fn(t)
	})
	if err != nil {
		return s.dbErr(err)
	}
	if t.appended {
		s.notify()
	}
	return nil
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.dbErr(s.db.View(fn))
}

func (s *Store) dbErr(err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
