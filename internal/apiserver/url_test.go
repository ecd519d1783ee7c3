package apiserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// URL and RevokeURLs of the fake: a link names the pod, port and ttl it
// was asked for; revocations are counted.
func (f *fakeService) URL(ctx context.Context, idOrName string, req api.URLRequest) (*api.PodURL, error) {
	p, err := f.lookup(idOrName)
	if err != nil {
		return nil, err
	}
	port := req.Port
	if port == "" {
		port = "app"
	}
	if port != "app" {
		return nil, fmt.Errorf("port %s: %w", port, errdefs.ErrNotFound)
	}
	host := fmt.Sprintf("http://%s-%s.localhost:29000/", port, p.ID)
	return &api.PodURL{Pod: p.ID, Port: port, Host: host, URL: host + "?ttl=" + req.TTL.String(), Expires: time.Unix(0, 0).Add(req.TTL)}, nil
}

func (f *fakeService) RevokeURLs(ctx context.Context, idOrName string) error {
	if _, err := f.lookup(idOrName); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked++
	return nil
}

func TestURLEndpoints(t *testing.T) {
	ts := startServer(t)
	c := ts.client
	ctx := context.Background()
	p := mustCreate(t, c, "web")
	u, err := c.URL(ctx, "web", api.URLRequest{TTL: time.Hour})
	if err != nil || u.Pod != p.ID || u.Port != "app" || u.URL != u.Host+"?ttl=1h0m0s" {
		t.Fatalf("URL = %+v, %v", u, err)
	}
	if _, err := c.URL(ctx, "web", api.URLRequest{Port: "nope"}); !errdefs.IsNotFound(err) {
		t.Errorf("missing port: %v, want not found", err)
	}
	if _, err := c.URL(ctx, "ghost", api.URLRequest{}); !errdefs.IsNotFound(err) {
		t.Errorf("missing pod: %v, want not found", err)
	}
	if err := c.RevokeURLs(ctx, "web"); err != nil || ts.fake.revoked != 1 {
		t.Errorf("revoke: %v, revoked %d", err, ts.fake.revoked)
	}
	if err := c.RevokeURLs(ctx, "ghost"); !errdefs.IsNotFound(err) {
		t.Errorf("revoke missing pod: %v", err)
	}
	for body, field := range map[string]string{`{"ttl":-1}`: "ttl", `{"port":"../x"}`: "port", `{"prot":"a"}`: ""} {
		st, eb := ts.rawDo(t, "POST", "/v1/pods/web/url", body)
		if st != 400 || eb.Field != field {
			t.Errorf("%s: %d %+v, want 400 naming %q", body, st, eb, field)
		}
	}
}
