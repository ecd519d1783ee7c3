package rootfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testSpares is a Spares under dir that refills at once, closed at the
// test's end.
func testSpares(t *testing.T, dir string) *Spares {
	t.Helper()
	sp, err := NewSpares(filepath.Join(dir, "spares"))
	if err != nil {
		t.Fatal(err)
	}
	sp.delay = 0
	t.Cleanup(sp.Close)
	return sp
}

func waitSpares(t *testing.T, s *Spares, size int64, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.count(size) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares of %d bytes, want %d", s.count(size), size, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSpares: the first capped mount makes its own image and leaves a
// spare made behind it; the next takes the spare (a rename: the spare's
// inode becomes the pod's image) and a new spare is made; the pod's cap and
// persistence are those of a fresh image.
func TestSpares(t *testing.T) {
	dir := scratch(t)
	ctx := context.Background()
	const size = 32 << 20
	sp := testSpares(t, dir)
	l0 := filepath.Join(dir, "l0")
	writeFiles(t, l0, map[string]string{"a": "1"})

	podA := filepath.Join(dir, "a")
	if _, err := Mount(ctx, []string{l0}, podA, Options{StorageBytes: size, Spares: sp}); err != nil {
		t.Fatal(err)
	}
	waitSpares(t, sp, size, 1)
	spare, _ := filepath.Glob(filepath.Join(sp.sizeDir(size), "*.img"))
	st, err := os.Stat(spare[0])
	if err != nil {
		t.Fatal(err)
	}

	podB := filepath.Join(dir, "b")
	rb, err := Mount(ctx, []string{l0}, podB, Options{StorageBytes: size, Spares: sp})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.Stat(filepath.Join(podB, storageImg))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st, got) {
		t.Fatal("the second pod made its own image instead of taking the spare")
	}
	waitSpares(t, sp, size, 1) // refilled
	if err := fill(filepath.Join(rb.Path, "big"), 64<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 64 MiB into a 32 MiB pod on a spare image: %v, want ENOSPC", err)
	}
	for _, p := range []string{podA, podB} {
		if err := Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Half-made images of an earlier process are dropped at start.
	tmp := filepath.Join(sp.sizeDir(size), "x.img.tmp")
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSpares(sp.dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-made spare kept: %v", err)
	}
}

// TestSparesOneTakerWins: eight takers racing for one spare: exactly one
// gets it.
func TestSparesOneTakerWins(t *testing.T) {
	dir := scratch(t)
	const size = 32 << 20
	sp := testSpares(t, dir)
	sp.refill(size)
	waitSpares(t, sp, size, 1)
	sp.Close() // no refill behind the takes

	if err := os.MkdirAll(filepath.Join(dir, "dst"), 0o755); err != nil {
		t.Fatal(err)
	}
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sp.take(size, filepath.Join(dir, "dst", string(rune('a'+i))+".img")) {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d takers got the one spare, want exactly 1", wins)
	}
}
