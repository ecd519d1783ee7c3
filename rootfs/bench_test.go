package rootfs

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Run with: go test -run '^$' -bench . -benchtime 20x ./rootfs/

func reportP50(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	if len(ds) > 0 {
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// lower makes a layer of n files of size bytes of random data.
func lower(b *testing.B, dir string, n, size int) string {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, size)
	for i := range n {
		rand.Read(buf)
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%50))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

func benchMount(b *testing.B, n, size int, storage int64) {
	dir := scratch(b)
	l := lower(b, filepath.Join(dir, "lower"), n, size)
	ctx := context.Background()
	pod := filepath.Join(dir, "pod")
	if storage > 0 { // the image is made once at pod create, then reused
		if err := os.MkdirAll(pod, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := MakeStorageImage(ctx, filepath.Join(pod, storageImg), storage); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := Mount(ctx, []string{l}, pod, Options{StorageBytes: storage}); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		if err := Unmount(ctx, pod); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportP50(b, ds)
	if err := Remove(ctx, pod); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkMountSmall(b *testing.B)       { benchMount(b, 10, 4096, 0) }
func BenchmarkMountBig200MB(b *testing.B)    { benchMount(b, 200, 1<<20, 0) }
func BenchmarkMountSmallCapped(b *testing.B) { benchMount(b, 10, 4096, 1<<30) }
func BenchmarkMountBigCapped(b *testing.B)   { benchMount(b, 200, 1<<20, 1<<30) }

// BenchmarkMkfs is the one-time cost of making a pod's storage image.
func BenchmarkMkfs1GiB(b *testing.B)  { benchMkfs(b, 1<<30) }
func BenchmarkMkfs10GiB(b *testing.B) { benchMkfs(b, 10<<30) }

func benchMkfs(b *testing.B, size int64) {
	requireRoot(b)
	dir := b.TempDir()
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		p := filepath.Join(dir, fmt.Sprint(i))
		t0 := time.Now()
		if err := MakeStorageImage(context.Background(), p, size); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		os.Remove(p)
	}
	reportP50(b, ds)
}
