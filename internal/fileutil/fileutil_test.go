package fileutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := WriteAtomic(p, []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("read back %q, %v; want two", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := WriteAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestLockFileExcludesAndHonoursContext(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l")
	ctx := context.Background()
	l, err := LockFile(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := LockFile(short, p, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock while held: %v, want deadline exceeded", err)
	}
	l.Unlock()
	l.Unlock() // twice is fine
	s1, err := LockFile(ctx, p, true)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LockFile(ctx, p, true)
	if err != nil {
		t.Fatalf("two shared locks: %v", err)
	}
	s1.Unlock()
	s2.Unlock()
}

func TestReadJSONIsStrict(t *testing.T) {
	dir := t.TempDir()
	type rec struct {
		A int `json:"a"`
	}
	for body, ok := range map[string]bool{
		`{"a":1}`:         true,
		`{"a":1,"b":2}`:   false, // a field this version does not know
		`{"a":1} {"a":2}`: false, // two records in one file
		`{"a":`:           false,
	} {
		p := filepath.Join(dir, "r.json")
		if err := WriteAtomic(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var r rec
		if err := ReadJSON(p, &r); (err == nil) != ok {
			t.Errorf("%s: err = %v, want ok=%v", body, err, ok)
		}
	}
	var r rec
	if err := ReadJSON(filepath.Join(dir, "missing"), &r); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want not exist", err)
	}
}

// A crash between WriteAtomic's create and rename leaves ".NAME.tmpN";
// RemoveStaleTemps removes those and nothing else.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"warm-1.json", ".hidden", "x.tmp1", ".x.tmp", ".x.tmpabc"}
	stale := []string{".warm-1.json.tmp3418781478", ".p1.json.tmp1"}
	for _, n := range append(append([]string{}, keep...), stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStaleTemps(dir); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Fatalf("left %v, want %v", left, keep)
	}
	if err := RemoveStaleTemps(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("a missing dir: %v", err)
	}
}
