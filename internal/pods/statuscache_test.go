package pods

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinacle/pinacle-node/supervisor"
)

func TestStatusCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	write := func(pid int) {
		t.Helper()
		b, err := json.Marshal(supervisor.Status{InitPid: pid, Services: []supervisor.ServiceStatus{{Name: "web"}}})
		if err != nil {
			t.Fatal(err)
		}
		// As init does: a new file renamed over the old one.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	c := newStatusCache()
	loads := 0
	c.load = func(p string) (*supervisor.Status, error) { loads++; return supervisor.ReadStatus(p) }

	if _, err := c.read(path); !os.IsNotExist(err) {
		t.Fatalf("missing file: err = %v, want not-exist", err)
	}
	write(1)
	for i := 0; i < 3; i++ {
		st, err := c.read(path)
		if err != nil || st.InitPid != 1 {
			t.Fatalf("read %d: %+v, %v", i, st, err)
		}
	}
	if loads != 1 {
		t.Errorf("unchanged file loaded %d times, want 1", loads)
	}
	// Same size, so only the inode (and mtime) tell the new status apart.
	write(2)
	if st, err := c.read(path); err != nil || st.InitPid != 2 {
		t.Fatalf("after rewrite: %+v, %v; want initPid 2", st, err)
	}
	if loads != 2 {
		t.Errorf("loads = %d after a rewrite, want 2", loads)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(path); err == nil {
		t.Fatal("read of a removed file succeeded from the cache")
	}
	if len(c.m) != 0 {
		t.Errorf("entry kept for a removed file: %v", c.m)
	}
	// A file that does not decode is an error, not a cached nil.
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(path); err == nil {
		t.Fatal("read of a corrupt status succeeded")
	}
}
