package pods

import (
	"context"
	"errors"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// TestSnapshotKey: what shapes the runtime changes the key; what is set
// anew per pod does not.
func TestSnapshotKey(t *testing.T) {
	r := newRig(t)
	base := func() *podspec.Pod {
		p := podSpec("a")
		p.Template = "t"
		p.Environment = map[string]string{"A": "1"}
		p.Network.Ports = []podspec.Port{{Name: "web", Internal: 8080}}
		return &p
	}
	k0 := r.m.snapshotKey(base(), "sha256:1")
	same := map[string]func(p *podspec.Pod){
		"name":      func(p *podspec.Pod) { p.Name, p.ID, p.Slug = "other", "x", "other" },
		"host port": func(p *podspec.Pod) { p.Network.Ports[0].External = 31000 },
		"subnet":    func(p *podspec.Pod) { p.Network.Subnet = "10.1.0.0/28" },
	}
	for what, f := range same {
		p := base()
		f(p)
		if k := r.m.snapshotKey(p, "sha256:1"); k != k0 {
			t.Errorf("%s changed the key", what)
		}
	}
	differ := map[string]func(p *podspec.Pod){
		"env":      func(p *podspec.Pod) { p.Environment["A"] = "2" },
		"template": func(p *podspec.Pod) { p.Template = "u" },
		"user":     func(p *podspec.Pod) { p.User = "1000" },
		"memory":   func(p *podspec.Pod) { p.Resources.MemoryMB++ },
		"service": func(p *podspec.Pod) {
			p.Services = append(p.Services, podspec.Service{Name: "s", Command: []string{"true"}})
		},
		"internal port": func(p *podspec.Pod) { p.Network.Ports[0].Internal = 9090 },
	}
	for what, f := range differ {
		p := base()
		f(p)
		if k := r.m.snapshotKey(p, "sha256:1"); k == k0 {
			t.Errorf("%s did not change the key", what)
		}
	}
	if r.m.snapshotKey(base(), "sha256:2") == k0 {
		t.Error("the image digest did not change the key")
	}
}

// TestSnapshotOffAndBadRequests: without a store the node says so; a
// fork needs a name and a source.
func TestSnapshotOffAndBadRequests(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, err := r.m.SnapshotTemplate(ctx, api.SnapshotRequest{Template: "nodejs"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("SnapshotTemplate without a store = %v", err)
	}
	if l, err := r.m.ListSnapshots(ctx); err != nil || len(l) != 0 {
		t.Errorf("ListSnapshots = %v, %v", l, err)
	}
	if _, err := r.m.Fork(ctx, "nosuch", api.ForkRequest{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Fork without a name = %v", err)
	}
	if _, err := r.m.Fork(ctx, "nosuch", api.ForkRequest{Name: "b"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Fork of a missing pod = %v", err)
	}
	p := r.mustCreate("stopped")
	if _, err := r.m.Stop(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Fork(ctx, p.ID, api.ForkRequest{Name: "b"}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("Fork of a stopped pod = %v", err)
	}
	if _, err := r.m.Get(ctx, "b"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a failed fork left its pod: %v", err)
	}
}
