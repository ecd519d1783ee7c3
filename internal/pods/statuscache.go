package pods

import (
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pinacle/pinacle-node/supervisor"
)

// statusCache keeps the last status read from each pod's status file with
// the file's identity (inode, size, mtime), so a view costs a stat instead
// of a read and a JSON decode when init has not rewritten the file. Init
// replaces the file by rename, so a new status is a new inode. For 100
// pods this is most of what `pod ls` cost the daemon.
type statusCache struct {
	load func(path string) (*supervisor.Status, error) // supervisor.ReadStatus; tests count calls

	mu sync.Mutex
	m  map[string]cachedStatus
}

type cachedStatus struct {
	ino   uint64
	size  int64
	mtime time.Time
	st    *supervisor.Status
}

func newStatusCache() *statusCache {
	return &statusCache{load: supervisor.ReadStatus, m: map[string]cachedStatus{}}
}

// read returns the status in path. The result is shared: callers must not
// modify it.
func (c *statusCache) read(path string) (*supervisor.Status, error) {
	fi, err := os.Stat(path)
	if err != nil {
		c.drop(path)
		return nil, err
	}
	var ino uint64
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = sys.Ino
	}
	c.mu.Lock()
	e, ok := c.m[path]
	c.mu.Unlock()
	if ok && e.ino == ino && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) {
		return e.st, nil
	}
	st, err := c.load(path)
	if err != nil {
		c.drop(path)
		return nil, err
	}
	c.mu.Lock()
	c.m[path] = cachedStatus{ino: ino, size: fi.Size(), mtime: fi.ModTime(), st: st}
	c.mu.Unlock()
	return st, nil
}

// drop forgets path (its pod is gone).
func (c *statusCache) drop(path string) {
	c.mu.Lock()
	delete(c.m, path)
	c.mu.Unlock()
}
