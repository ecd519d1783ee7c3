package supervisor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkSandboxToReady measures `runsc run --detach` to a sign of life
// watched from the host side, for:
//
//   - baseline: a bare sandbox (its shell touches a file, then sleeps);
//   - shell-services: a shell spawning the same three services and running
//     `true` once (the exec check), then touching the file: a lower bound
//     for running these services any way at all in gVisor, where every
//     exec costs a new address space (it does not wait for the ports, so
//     it flatters the supervisor less than it could);
//   - go-hello: a static Go program touching the file (the Go runtime's
//     own start in gVisor);
//   - supervised: pods' init (cmd/pinacle-init, as pods run it) until its
//     status file reports the three services healthy;
//   - supervised-initbin: the same supervisor in the test's stand-in
//     binary (testdata/initbin).
//
// Reports p50_ms (and init_rss_kB for the supervised cases).
//
//	go test -run '^$' -bench SandboxToReady -benchtime 10x ./supervisor/
func BenchmarkSandboxToReady(b *testing.B) {
	requireRunsc(b)
	dir := b.TempDir()
	initBin := goBuild(b, dir, "pinacle-init", "../cmd/pinacle-init")
	stand := buildInitBin(b)
	hello := goBuild(b, dir, "gohello", "./testdata/gohello")
	b.Run("baseline", func(b *testing.B) {
		benchSandbox(b, func(tb testing.TB) (*sandbox, string) {
			s := newSandbox(tb, "", nil, []string{"/bin/sh", "-c", "touch /.pinacle/run/up; exec sleep 100000"})
			return s, filepath.Join(s.run, "up")
		}, nil)
	})
	b.Run("shell-services", func(b *testing.B) {
		benchSandbox(b, func(tb testing.TB) (*sandbox, string) {
			s := newSandbox(tb, "", nil, []string{"/bin/sh", "-c", shellServices})
			return s, filepath.Join(s.run, "up")
		}, nil)
	})
	b.Run("go-hello", func(b *testing.B) {
		benchSandbox(b, func(tb testing.TB) (*sandbox, string) {
			s := newSandbox(tb, hello, nil, []string{"/.pinacle/bin/pinacle-node", "/.pinacle/run/up"})
			return s, filepath.Join(s.run, "up")
		}, nil)
	})
	for _, c := range []struct {
		name, bin string
		args      []string
	}{{"supervised", initBin, pinacleInitArgs}, {"supervised-initbin", stand, initArgs}} {
		b.Run(c.name, func(b *testing.B) {
			var rss []float64
			benchSandbox(b, func(tb testing.TB) (*sandbox, string) {
				s := newSandbox(tb, c.bin, smokeConfig(), c.args)
				return s, filepath.Join(s.run, "status.json")
			}, func(s *sandbox) { rss = append(rss, float64(initRSS(b, s))) })
			slices.Sort(rss)
			b.ReportMetric(rss[len(rss)/2], "init_rss_kB")
		})
	}
}

const shellServices = `httpd -f -p 127.0.0.1:8080 -h /tmp &
httpd -f -p 127.0.0.1:8081 -h /tmp &
su -s /bin/sh nobody -c 'exec sleep 100000' &
true && touch /.pinacle/run/up
wait`

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
