package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// now is the fixed clock of the golden files; times print in UTC.
var now = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	os.Exit(m.Run())
}

func exitCode(n int) *int { return &n }

// samplePods cover every cell: a running pod with a node URL, a port
// without one and a service with a failing check; a failed pod with its
// reason and a port that has no host port.
func samplePods() []*api.Pod {
	return []*api.Pod{
		{
			ID: "p0a1b2c3d4e", Name: "web", State: lifecycle.Running, Template: "nextjs",
			Image: "node:22", IP: "10.77.0.2", CreatedAt: now.Add(-90 * time.Minute),
			Ports: []api.PortStatus{
				{Name: "app", Internal: 3000, External: 30001, URL: "http://127.0.0.1:30001", Gateway: "http://app-p0a1b2c3d4e.localhost:29000/"},
				{Name: "ide", Internal: 8080, External: 30002, Public: true},
			},
			Services: []api.ServiceInfo{
				{Name: "app", State: api.ServiceRunning, Health: "unhealthy", Restarts: 2},
				{Name: "ide", State: api.ServiceHealthy, Health: "healthy"},
			},
		},
		{
			ID: "p5f6a7b8c9d", Name: "broken", State: lifecycle.Failed, Reason: "image not found",
			Image: "nosuch:1", CreatedAt: now.Add(-72 * time.Hour),
			Ports: []api.PortStatus{{Name: "http", Internal: 80}},
		},
	}
}

func sampleEvents() []api.Event {
	return []api.Event{
		{Seq: 1, Time: now.Add(-time.Minute), PodID: "p0a1b2c3d4e", Type: api.EventState, To: lifecycle.Pending},
		{Seq: 2, Time: now.Add(-50 * time.Second), PodID: "p0a1b2c3d4e", Type: api.EventState, From: lifecycle.Pending, To: lifecycle.Provisioning},
		{Seq: 3, Time: now.Add(-10 * time.Second), PodID: "p0a1b2c3d4e", Type: "oom", Reason: "memory limit", Message: "service app was killed"},
		{Seq: 4, Time: now, Type: "node", Message: "warm pool refilled"},
	}
}

func TestGolden(t *testing.T) {
	table := func(f func(w *bytes.Buffer)) func() []byte {
		return func() []byte {
			var b bytes.Buffer
			tw := NewTable(&b)
			var cells bytes.Buffer
			f(&cells)
			tw.Write(cells.Bytes())
			tw.Flush()
			return b.Bytes()
		}
	}
	ps := samplePods()
	cases := map[string]func() []byte{
		"pods.txt":       table(func(w *bytes.Buffer) { Pods(w, ps, now) }),
		"pod.txt":        table(func(w *bytes.Buffer) { Pod(w, ps[0], now) }),
		"pod-failed.txt": table(func(w *bytes.Buffer) { Pod(w, ps[1], now) }),
		"metrics.txt": table(func(w *bytes.Buffer) {
			Metrics(w, &api.Metrics{PodID: "p0a1b2c3d4e", Time: now,
				Sandbox: &api.SandboxStats{CPUUsageNanos: 1_234_567_890, MemoryUsage: 48 << 20, MemoryLimit: 512 << 20,
					MemoryMaxUsage: 64<<20 + 512<<10, Pids: 12, PidsLimit: 512, OOMKills: 1},
				Ports: []api.PortCounters{{Name: "app", HostPort: 30001, ConnsTotal: 10, ConnsActive: 1, BytesIn: 1536, BytesOut: 3 << 30}},
			})
		}),
		"metrics-stopped.txt": table(func(w *bytes.Buffer) { Metrics(w, &api.Metrics{PodID: "p5f6a7b8c9d", Time: now}) }),
		"health.txt": table(func(w *bytes.Buffer) {
			Health(w, &api.Health{PodID: "p0a1b2c3d4e", State: lifecycle.Running, Sandbox: "running",
				Reason: "service app is running", Services: ps[0].Services})
		}),
		"services.txt": table(func(w *bytes.Buffer) {
			Services(w, &api.ServiceStatus{Ready: false, Services: []api.ServiceInfo{
				{Name: "app", State: api.ServiceBackoff, Restarts: 3, LastExitCode: exitCode(1), LastError: "exited 1", Since: now.Add(-75 * time.Second)},
				{Name: "ide", State: api.ServiceHealthy, Pid: 42, Since: now.Add(-time.Hour)},
				{Name: "idle", State: api.ServicePending},
			}}, now)
		}),
		"events.txt": func() []byte {
			var b bytes.Buffer
			EventHeader(&b)
			for _, ev := range sampleEvents() {
				Event(&b, ev)
			}
			return b.Bytes()
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			got := f()
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/render -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
			}
		})
	}
}

func TestFillURLs(t *testing.T) {
	ps := samplePods()
	FillURLs("", ps...)
	if got := ps[0].Ports[1].URL; got != "http://127.0.0.1:30002" {
		t.Errorf("missing URL filled as %q", got)
	}
	if got := ps[1].Ports[0].URL; got != "" {
		t.Errorf("a port without a host port got URL %q", got)
	}
	FillURLs("pod.example", ps...)
	if got := ps[0].Ports[0].URL; got != "http://pod.example:30001" {
		t.Errorf("explicit host: URL %q", got)
	}
	FillURLs("::1", ps[0])
	if got := ps[0].Ports[0].URL; got != "http://[::1]:30001" {
		t.Errorf("IPv6 host: URL %q", got)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 48 << 20: "48.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
