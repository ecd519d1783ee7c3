package imagestore

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// fileLock is an flock(2) lock. flock locks belong to the open file
// description, so they exclude other goroutines of this process as well as
// other processes.
type fileLock struct{ f *os.File }

// lock takes how (unix.LOCK_SH or LOCK_EX) on root/locks/name, polling so
// that ctx can cancel the wait.
func (s *store) lock(ctx context.Context, name string, how int) (*fileLock, error) {
	f, err := os.OpenFile(filepath.Join(s.lockDir(), name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return &fileLock{f}, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

func (l *fileLock) unlock() {
	if l != nil {
		l.f.Close() // closing the last descriptor releases the lock
	}
}

// The store-wide lock: pulls, imports and lease changes hold it shared for
// their whole run; GC holds it exclusive, so it never sees a layer that is
// committed but not yet referenced by the index.
func (s *store) lockShared(ctx context.Context) (*fileLock, error) {
	return s.lock(ctx, "store.lock", unix.LOCK_SH)
}

func (s *store) lockExclusive(ctx context.Context) (*fileLock, error) {
	return s.lock(ctx, "store.lock", unix.LOCK_EX)
}
