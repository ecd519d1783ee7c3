package pods

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

func checkSpec() podspec.Pod {
	spec := podSpec("web")
	spec.HealthChecks = []podspec.NamedHealthCheck{{Name: "app-up", HealthCheck: podspec.HealthCheck{Type: podspec.HealthTCP, Port: 8080}}}
	return spec
}

// initWrites makes the fake sandbox's init write st as its status.
func initWrites(r *rig, st supervisor.Status) {
	r.h.onCreate = func(bundle string) {
		b, _ := json.Marshal(st)
		_ = os.WriteFile(filepath.Join(filepath.Dir(bundle), "run", "status.json"), b, 0o644)
	}
}

// A pod-level check that init gives up on fails the create, naming the
// check; the check reaches init through services.json even without services.
func TestPodCheckFailsCreate(t *testing.T) {
	r := newRig(t)
	initWrites(r, supervisor.Status{Services: []supervisor.ServiceStatus{}, Checks: []supervisor.CheckStatus{
		{Name: "app-up", Health: supervisor.HealthUnhealthy, LastError: "never became healthy: tcp 127.0.0.1:8080: refused"},
	}})
	_, err := r.m.Create(context.Background(), api.CreateRequest{Spec: checkSpec(), Wait: true})
	if err == nil {
		t.Fatal("create succeeded with a failing pod check")
	}
	p := r.record("web")
	if p.State != lifecycle.Failed || !strings.Contains(p.Reason, "health check app-up failed") || !strings.Contains(p.Reason, "refused") {
		t.Fatalf("pod %s, reason %q", p.State, p.Reason)
	}
	b, err := os.ReadFile(filepath.Join(r.m.configDir("web"), "services.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := supervisor.ParseConfig(b)
	if err != nil || len(cfg.Checks) != 1 || cfg.Checks[0].Name != "app-up" || cfg.Checks[0].Port != 8080 {
		t.Fatalf("services.json checks: %+v, %v", cfg, err)
	}
}

// Once init says ready (its checks passing), the pod runs and its health
// lists the checks.
func TestPodCheckPassing(t *testing.T) {
	r := newRig(t)
	initWrites(r, supervisor.Status{Ready: true, Services: []supervisor.ServiceStatus{}, Checks: []supervisor.CheckStatus{
		{Name: "app-up", Health: supervisor.HealthHealthy},
	}})
	p, err := r.m.Create(context.Background(), api.CreateRequest{Spec: checkSpec(), Wait: true})
	if err != nil || p.State != lifecycle.Running {
		t.Fatalf("create: %+v, %v", p, err)
	}
	h, err := r.m.Health(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Checks) != 1 || h.Checks[0].Name != "app-up" || h.Checks[0].Health != "healthy" {
		t.Fatalf("health checks %+v", h.Checks)
	}
}
