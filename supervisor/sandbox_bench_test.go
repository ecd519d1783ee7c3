package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkSandboxToReady compares `runsc run --detach` to the first sign of
// life of a bare sandbox (its process touches a file in the run dir) with
// `runsc run --detach` to the status file reporting three trivial services
// healthy, both watched from the host side. The difference is what the
// supervisor adds. Reports p50_ms (and init_rss_kB for the supervised case).
//
//	go test -run '^$' -bench SandboxToReady -benchtime 15x ./supervisor/
func BenchmarkSandboxToReady(b *testing.B) {
	requireRunsc(b)
	bin := buildInitBin(b)
	b.Run("baseline", func(b *testing.B) {
		benchSandbox(b, func(tb testing.TB) (*sandbox, string) {
			s := newSandbox(tb, "", nil, []string{"/bin/sh", "-c", "touch /.pinacle/run/up; exec sleep 100000"})
			return s, filepath.Join(s.run, "up")
		}, nil)
	})
	b.Run("supervised", func(b *testing.B) {
		var rss []float64
		benchSandbox(b, func(tb testing.TB) (*sandbox, string) {
			s := newSandbox(tb, bin, smokeConfig(), initArgs)
			return s, filepath.Join(s.run, "status.json")
		}, func(s *sandbox) { rss = append(rss, float64(initRSS(b, s))) })
		slices.Sort(rss)
		b.ReportMetric(rss[len(rss)/2], "init_rss_kB")
	})
}

func benchSandbox(b *testing.B, mk func(testing.TB) (*sandbox, string), after func(*sandbox)) {
	var ds []float64
	for b.Loop() {
		b.StopTimer()
		s, marker := mk(b)
		b.StartTimer()
		t0 := time.Now()
		s.start()
		for {
			if marker[len(marker)-5:] == ".json" {
				if st, err := ReadStatus(marker); err == nil && st.Ready {
					break
				}
			} else if _, err := os.Stat(marker); err == nil {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("not ready after 30s")
			}
			time.Sleep(time.Millisecond)
		}
		ds = append(ds, float64(time.Since(t0).Microseconds())/1000)
		b.StopTimer()
		if after != nil {
			after(s)
		}
		s.destroy()
		b.StartTimer()
	}
	slices.Sort(ds)
	b.ReportMetric(ds[len(ds)/2], "p50_ms")
	b.ReportMetric(0, "ns/op")
}
