package oci

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// Run with: go test -run '^$' -bench . -benchtime 20x ./oci/
// Each reports the median (p50-ms) besides Go's mean ns/op.

func reportP50(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	if len(ds) > 0 {
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*9/10].Microseconds())/1000, "p90-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCreateStart: runsc create + start until the container runs.
func BenchmarkCreateStart(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		id := e.id("bcs")
		bundle := e.bundle(id, nil, "/bin/sleep", "1000")
		t0 := time.Now()
		if err := e.rt.Create(ctx, id, bundle, CreateOpts{}); err != nil {
			b.Fatal(err)
		}
		if err := e.rt.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		if err := e.rt.Delete(ctx, id, true); err != nil {
			b.Fatal(err)
		}
	}
	reportP50(b, ds)
}

// BenchmarkRunTrue: create, start and wait for `true` to exit.
func BenchmarkRunTrue(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		id := e.id("brt")
		bundle := e.bundle(id, nil, "/bin/true")
		t0 := time.Now()
		ex, err := e.rt.Run(ctx, id, bundle, CreateOpts{})
		if err != nil || ex.Code != 0 {
			b.Fatal(ex, err)
		}
		ds = append(ds, time.Since(t0))
		if err := e.rt.Delete(ctx, id, true); err != nil {
			b.Fatal(err)
		}
	}
	reportP50(b, ds)
}

// BenchmarkExecTrue: `runsc exec true` in a running sandbox.
func BenchmarkExecTrue(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	id := e.id("bex")
	if err := e.rt.Create(ctx, id, e.bundle(id, nil, "/bin/sleep", "1000"), CreateOpts{}); err != nil {
		b.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	if err := e.rt.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if code, err := e.rt.Exec(ctx, id, ExecOpts{Args: []string{"/bin/true"}}); err != nil || code != 0 {
			b.Fatal(code, err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportP50(b, ds)
}

// BenchmarkRawExecTrue is the baseline for BenchmarkExecTrue: runsc exec
// invoked directly, so the difference is this package's overhead.
func BenchmarkRawExecTrue(b *testing.B) {
	e := newTestEnv(b)
	ctx := context.Background()
	id := e.id("braw")
	if err := e.rt.Create(ctx, id, e.bundle(id, nil, "/bin/sleep", "1000"), CreateOpts{}); err != nil {
		b.Fatal(err)
	}
	defer e.rt.Delete(ctx, id, true)
	if err := e.rt.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	bin := e.rt.(*runsc).binary
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if out, err := exec.Command(bin, "--root="+e.root, "exec", id, "/bin/true").CombinedOutput(); err != nil {
			b.Fatal(string(out), err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportP50(b, ds)
}
