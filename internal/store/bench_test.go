package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

// benchSpec and benchStatus are about the size of a real pod's records: a
// spec with a handful of services and env, a status with netns, IP,
// sandbox id and ports.
var (
	benchSpec   = json.RawMessage(fmt.Sprintf(`{"image":"ghcr.io/pinacle/nextjs:latest","tier":"dev.small","env":{%s},"services":[%s]}`, benchEnv(), benchServices()))
	benchStatus = json.RawMessage(`{"netns":"/run/netns/pinacle-p1","ip":"10.88.0.2","sandbox":"0123456789abcdef","ports":{"http":30001,"ide":30002,"term":30003}}`)
)

func benchEnv() string {
	var kv []string
	for i := range 20 {
		kv = append(kv, fmt.Sprintf(`"VAR_%d":"value-%d-%s"`, i, i, strings.Repeat("x", 20)))
	}
	return strings.Join(kv, ",")
}

func benchServices() string {
	var svcs []string
	for _, n := range []string{"code-server", "terminal", "vibe-kanban", "app", "db"} {
		svcs = append(svcs, fmt.Sprintf(`{"name":%q,"command":["/usr/bin/%s","--port","8080"],"port":8080,"healthCheck":{"type":"http","port":8080,"path":"/healthz"}}`, n, n))
	}
	return strings.Join(svcs, ",")
}

func BenchmarkListPods100(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b)
	for i := range 100 {
		id := fmt.Sprintf("pod-%03d", i)
		if _, err := s.CreatePod(ctx, Pod{ID: id, Name: "n" + id, Spec: benchSpec}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.TransitionWith(ctx, id, lifecycle.Provisioning, "", func(p *Pod) error { p.Status = benchStatus; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pods, err := s.ListPods(ctx)
		if err != nil || len(pods) != 100 {
			b.Fatal(len(pods), err)
		}
	}
}

func BenchmarkGetPod(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b)
	if _, err := s.CreatePod(ctx, Pod{ID: "p1", Name: "web", Spec: benchSpec, Status: benchStatus}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetPod(ctx, "p1"); err != nil {
			b.Fatal(err)
		}
	}
}

// CreatePod and Transition are one fsynced commit each: these measure the
// disk's fsync more than the code.
func BenchmarkCreatePod(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("pod-%d", i)
		i++
		if _, err := s.CreatePod(ctx, Pod{ID: id, Name: "n" + id, Spec: benchSpec}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTransition(b *testing.B) {
	ctx := context.Background()
	s := openTemp(b)
	if _, err := s.CreatePod(ctx, Pod{ID: "p1", Name: "web", Spec: benchSpec, Status: benchStatus}); err != nil {
		b.Fatal(err)
	}
	for _, st := range []lifecycle.State{lifecycle.Provisioning, lifecycle.Running} {
		if _, err := s.Transition(ctx, "p1", st, ""); err != nil {
			b.Fatal(err)
		}
	}
	cur := lifecycle.Running
	b.ReportAllocs()
	for b.Loop() {
		cur = cycle[cur]
		if _, err := s.Transition(ctx, "p1", cur, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
