package snapshots

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func key(c byte) string { return strings.Repeat(string(c), 32) }

func put(t *testing.T, s *Store, k string, size int) []string {
	t.Helper()
	p, err := s.Begin(Meta{Key: k, Template: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.Path(CheckpointDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.Path(CheckpointDir), "img"), make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	_, ev, err := p.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestStoreLRUCap(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, key('a'), 100<<10)
	put(t, s, key('b'), 100<<10)
	if _, err := s.Get(key('a')); err != nil { // a is now the most recently used
		t.Fatal(err)
	}
	ev := put(t, s, key('c'), 150<<10)
	if len(ev) != 1 || ev[0] != key('b') {
		t.Fatalf("evicted %v, want [b...]", ev)
	}
	if _, err := s.Get(key('b')); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get evicted = %v, want not found", err)
	}
	all, _ := s.List()
	if len(all) != 2 || all[0].Key != key('a') && all[0].Key != key('c') {
		t.Fatalf("List = %+v", all)
	}
}

func TestStoreRemoveAndHalfWritten(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, key('a'), 10)
	if err := s.Remove(key('a')); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(key('a')); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}
	if _, err := s.Begin(Meta{Key: key('b')}); err != nil {
		t.Fatal(err)
	}
	// A half-written snapshot is not listed and goes at the next Open.
	if all, _ := s.List(); len(all) != 0 {
		t.Fatalf("List = %+v", all)
	}
	if _, err := Open(dir, 0); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
	for _, bad := range []string{"", "../x", strings.Repeat("A", 32), "abc"} {
		if _, err := s.Get(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Get(%q) = %v", bad, err)
		}
	}
}
