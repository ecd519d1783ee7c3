package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// epochs holds each pod's current token epoch: a random number that every
// token of the pod carries. Revoking a pod forgets its epoch, so its
// tokens no longer match; the next link starts a new random one (a
// counter would restart at the same value for a recreated pod ID). The
// map is persisted (0600) so links survive a daemon restart.
type epochs struct {
	path string
	mu   sync.RWMutex
	m    map[string]uint64
}

// loadEpochs reads path; a missing file is an empty set.
func loadEpochs(path string) (*epochs, error) {
	e := &epochs{path: path, m: map[string]uint64{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return e, nil
	case err != nil:
		return nil, fmt.Errorf("gateway epochs: %w", err)
	}
	if err := json.Unmarshal(b, &e.m); err != nil {
		return nil, fmt.Errorf("gateway epochs %s: %w", path, err)
	}
	return e, nil
}

// current returns pod's epoch and whether it has one.
func (e *epochs) current(pod string) (uint64, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	v, ok := e.m[pod]
	return v, ok
}

// ensure returns pod's epoch, making one if it has none.
func (e *epochs) ensure(pod string) (uint64, error) {
	if v, ok := e.current(pod); ok {
		return v, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.m[pod]; ok {
		return v, nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	v := binary.BigEndian.Uint64(b[:])
	e.m[pod] = v
	if err := e.saveLocked(); err != nil {
		delete(e.m, pod)
		return 0, err
	}
	return v, nil
}

// revoke forgets pod's epoch; revoking a pod with none is success.
func (e *epochs) revoke(pod string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, ok := e.m[pod]
	if !ok {
		return nil
	}
	delete(e.m, pod)
	if err := e.saveLocked(); err != nil {
		e.m[pod] = old
		return err
	}
	return nil
}

func (e *epochs) saveLocked() error {
	if e.path == "" {
		return nil
	}
	b, err := json.Marshal(e.m)
	if err != nil {
		return err
	}
	if err := fileutil.WriteAtomic(e.path, b, 0o600); err != nil {
		return fmt.Errorf("gateway epochs: %w", err)
	}
	return nil
}
