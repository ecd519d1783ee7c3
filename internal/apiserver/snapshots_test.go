package apiserver

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

func (f *fakeService) Fork(ctx context.Context, idOrName string, req api.ForkRequest) (*api.Pod, error) {
	src, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	return f.Create(ctx, api.CreateRequest{Spec: podspec.Pod{Name: req.Name, BaseImage: src.Image}, Wait: req.Wait})
}

func (f *fakeService) SnapshotTemplate(_ context.Context, req api.SnapshotRequest) (*api.Snapshot, error) {
	if req.Template != "web" {
		return nil, fmt.Errorf("no running pod of template %s: %w", req.Template, errdefs.ErrNotFound)
	}
	return &api.Snapshot{Key: "0123456789abcdef0123456789abcdef", Template: req.Template}, nil
}

func (f *fakeService) ListSnapshots(context.Context) ([]api.Snapshot, error) {
	return []api.Snapshot{{Key: "0123456789abcdef0123456789abcdef", Template: "web"}}, nil
}

func (f *fakeService) RemoveSnapshot(_ context.Context, key string) error {
	if key != "0123456789abcdef0123456789abcdef" {
		return fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	return nil
}

// TestForkAndSnapshotRoutes: the routes reach the service and carry its
// errors' classes back through the client.
func TestForkAndSnapshotRoutes(t *testing.T) {
	c := startServer(t).client
	ctx := context.Background()
	if _, err := c.Create(ctx, api.CreateRequest{Spec: podspec.Pod{Name: "src", BaseImage: "busybox"}, Wait: true}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Fork(ctx, "src", api.ForkRequest{Name: "copy", Wait: true})
	if err != nil || p.Name != "copy" {
		t.Fatalf("Fork = %+v, %v", p, err)
	}
	if _, err := c.Fork(ctx, "src", api.ForkRequest{Name: "bad/name"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Fork with a bad name = %v", err)
	}
	if _, err := c.SnapshotTemplate(ctx, api.SnapshotRequest{Template: "none"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("SnapshotTemplate(none) = %v", err)
	}
	if s, err := c.SnapshotTemplate(ctx, api.SnapshotRequest{Template: "web"}); err != nil || s.Template != "web" {
		t.Fatalf("SnapshotTemplate = %+v, %v", s, err)
	}
	if l, err := c.ListSnapshots(ctx); err != nil || len(l) != 1 {
		t.Fatalf("ListSnapshots = %+v, %v", l, err)
	}
	if err := c.RemoveSnapshot(ctx, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveSnapshot(ctx, "ffffffffffffffffffffffffffffffff"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("RemoveSnapshot(missing) = %v", err)
	}
}
