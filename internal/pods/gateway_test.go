package pods

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
	"github.com/pinacle/pinacle-node/podspec"
	"github.com/pinacle/pinacle-node/supervisor"
)

// linkWorks opens link on g and says whether it signed in (303) or not.
func linkWorks(t *testing.T, g *gateway.Gateway, link string) bool {
	t.Helper()
	req := httptest.NewRequest("GET", link, nil)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	switch rec.Code {
	case http.StatusSeeOther:
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("link %s: status %d", link, rec.Code)
	return false
}

func TestGatewayLinks(t *testing.T) {
	r := newRig(t)
	g, err := gateway.New(t.TempDir(), gateway.ResolverFunc(func(ctx context.Context, pod, port string) (gateway.Backend, error) {
		return r.m.Backend(ctx, pod, port)
	}), gateway.WithURL("http", 29000))
	if err != nil {
		t.Fatal(err)
	}
	r.cfg.Gateway = g
	r.start()
	ctx := context.Background()
	p := r.mustCreate("web")
	if want := "http://app-web.localhost:29000/"; p.Ports[0].Gateway != want {
		t.Errorf("view gateway URL %q, want %q", p.Ports[0].Gateway, want)
	}
	u, err := r.m.URL(ctx, "web", api.URLRequest{TTL: time.Hour})
	if err != nil || u.Pod != "web" || u.Port != "app" || !strings.HasPrefix(u.URL, "http://app-web.localhost:29000/__pinacle/auth?token=") {
		t.Fatalf("URL = %+v, %v", u, err)
	}
	if d := time.Until(u.Expires); d < 59*time.Minute || d > time.Hour {
		t.Errorf("expires in %s, want 1h", d)
	}
	if !linkWorks(t, g, u.URL) {
		t.Fatal("a fresh link does not sign in")
	}
	if _, err := r.m.URL(ctx, "web", api.URLRequest{Port: "nope"}); !errdefs.IsNotFound(err) {
		t.Errorf("missing port: %v", err)
	}
	if _, err := r.m.URL(ctx, "ghost", api.URLRequest{}); !errdefs.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
	if be, err := r.m.Backend(ctx, "web", "app"); err != nil || be.Addr != "10.88.0.2:8080" || be.Header != nil {
		t.Errorf("Backend = %+v, %v", be, err)
	}
	if _, err := r.m.Backend(ctx, "web", "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("Backend of a missing port: %v", err)
	}
	if err := r.m.RevokeURLs(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if linkWorks(t, g, u.URL) {
		t.Error("a revoked link still signs in")
	}
	if _, err := r.m.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Backend(ctx, "web", "app"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Backend of a stopped pod: %v, want unavailable", err)
	}
	// Deleting the pod revokes its links.
	u2, err := r.m.URL(ctx, "web", api.URLRequest{})
	if err != nil || !linkWorks(t, g, u2.URL) {
		t.Fatalf("link of a stopped pod: %v", err)
	}
	if err := r.m.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if linkWorks(t, g, u2.URL) {
		t.Error("a deleted pod's link still signs in")
	}
}

func TestURLWithoutGateway(t *testing.T) {
	r := newRig(t)
	p := r.mustCreate("web")
	if p.Ports[0].Gateway != "" {
		t.Errorf("gateway URL %q without a gateway", p.Ports[0].Gateway)
	}
	if _, err := r.m.URL(context.Background(), "web", api.URLRequest{}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("URL without a gateway: %v, want unavailable", err)
	}
	if err := r.m.RevokeURLs(context.Background(), "web"); err != nil {
		t.Errorf("revoke without a gateway: %v", err)
	}
}

// The web terminal's port gets the pod's token from the gateway; other
// ports get nothing added.
func TestBackendWebtermToken(t *testing.T) {
	r := newRig(t)
	spec := podSpec("term")
	spec.Network.Ports = append(spec.Network.Ports, podspec.Port{Name: "terminal", Internal: 3003})
	spec.Services = []podspec.Service{{Name: "web-terminal", Port: 3003,
		Command: []string{"/.pinacle/bin/pinacle-node", "webterm", "--port", "3003", "--token-file", "/.pinacle/config/webterm.token"}}}
	r.h.onCreate = func(bundle string) { // init says ready
		b, _ := json.Marshal(supervisor.Status{Ready: true, StartedAt: time.Now(), UpdatedAt: time.Now()})
		_ = os.WriteFile(filepath.Join(filepath.Dir(bundle), "run", "status.json"), b, 0o644)
	}
	if _, err := r.m.Create(context.Background(), api.CreateRequest{Spec: spec, Wait: true}); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(r.m.configDir("term"), webtermTokenFile))
	if err != nil || len(strings.TrimSpace(string(tok))) != 64 {
		t.Fatalf("token file: %q %v", tok, err)
	}
	if fi, _ := os.Stat(filepath.Join(r.m.configDir("term"), webtermTokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("token mode %v", fi.Mode())
	}
	be, err := r.m.Backend(context.Background(), "term", "terminal")
	if err != nil || be.Header.Get("Authorization") != "Bearer "+strings.TrimSpace(string(tok)) {
		t.Errorf("terminal backend %+v, %v; want the token as a bearer", be, err)
	}
	if be, err := r.m.Backend(context.Background(), "term", "app"); err != nil || be.Header != nil {
		t.Errorf("app backend %+v, %v; want no header", be, err)
	}
	// A restart of the pod keeps the token.
	if _, err := r.m.Stop(context.Background(), "term"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.Start(context.Background(), "term"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(r.m.configDir("term"), webtermTokenFile)); string(again) != string(tok) {
		t.Error("the token changed across stop and start")
	}
}

// Jupyter and code-server, as the built-in service definitions run them,
// get their own secrets: Jupyter's as an Authorization token, code-server's
// as its session cookie; each pod has its own, and a service that names no
// secret gets none.
func TestBackendServiceSecrets(t *testing.T) {
	r := newRig(t)
	r.h.onCreate = func(bundle string) { // init says ready
		b, _ := json.Marshal(supervisor.Status{Ready: true, StartedAt: time.Now(), UpdatedAt: time.Now()})
		_ = os.WriteFile(filepath.Join(filepath.Dir(bundle), "run", "status.json"), b, 0o644)
	}
	mk := func(name string) {
		spec := podSpec(name)
		spec.Network.Ports = append(spec.Network.Ports, podspec.Port{Name: "lab", Internal: 8888}, podspec.Port{Name: "code", Internal: 8443})
		spec.Services = []podspec.Service{
			{Name: "jupyter", Port: 8888, Command: []string{"jupyter", "lab"}, Env: map[string]string{"JUPYTER_TOKEN_FILE": "/.pinacle/config/jupyter.token"}},
			{Name: "code-server", Port: 8443, Command: []string{"sh", "-c", "HASHED_PASSWORD=$(cat /.pinacle/config/code-server.token) exec code-server"}},
		}
		if _, err := r.m.Create(context.Background(), api.CreateRequest{Spec: spec, Wait: true}); err != nil {
			t.Fatal(err)
		}
	}
	mk("one")
	mk("two")
	secret := func(pod, file string) string {
		b, err := os.ReadFile(filepath.Join(r.m.configDir(pod), file))
		if err != nil || len(b) != 64 || strings.TrimSpace(string(b)) != string(b) {
			t.Fatalf("%s of %s: %q %v, want 64 hex digits and no newline", file, pod, b, err)
		}
		if fi, _ := os.Stat(filepath.Join(r.m.configDir(pod), file)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s of %s: mode %v, want 0600", file, pod, fi.Mode())
		}
		return string(b)
	}
	if secret("one", "jupyter.token") == secret("two", "jupyter.token") || secret("one", "code-server.token") == secret("one", "jupyter.token") {
		t.Error("two pods, or two services, share a secret")
	}
	be, err := r.m.Backend(context.Background(), "one", "lab")
	if err != nil || be.Header.Get("Authorization") != "token "+secret("one", "jupyter.token") || len(be.Cookies) != 0 {
		t.Errorf("jupyter backend %+v, %v; want its token in Authorization", be, err)
	}
	be, err = r.m.Backend(context.Background(), "one", "code")
	if err != nil || len(be.Cookies) != 1 || be.Cookies[0].Name != "code-server-session" || be.Cookies[0].Value != secret("one", "code-server.token") || be.Header != nil {
		t.Errorf("code-server backend %+v, %v; want its secret as the session cookie", be, err)
	}
	if be, err := r.m.Backend(context.Background(), "one", "app"); err != nil || be.Header != nil || be.Cookies != nil || be.Activity == nil {
		t.Errorf("app backend %+v, %v; want no secret, and activity credited", be, err)
	}
}

// A request through the gateway wakes a hibernated pod and counts as
// activity.
func TestBackendWakesAndCountsActivity(t *testing.T) {
	r := newRig(t)
	r.mustCreate("web")
	r.mustHibernate("web")
	be, err := r.m.Backend(context.Background(), "web", "app")
	if err != nil || be.Addr == "" || !be.Woken {
		t.Fatalf("Backend of a hibernated pod: %+v, %v; want it woken, and said so", be, err)
	}
	if be, err := r.m.Backend(context.Background(), "web", "app"); err != nil || be.Woken {
		t.Errorf("Backend of a running pod: %+v, %v; want not woken", be, err)
	}
	if p := r.record("web"); p.State != lifecycle.Running {
		t.Errorf("after Backend the pod is %s, want running", p.State)
	}
	fi, err := os.Stat(filepath.Join(r.m.runDir("web"), ActivityFile))
	if err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("activity file: %v %v, want touched now", fi, err)
	}
	// Bytes a long connection moves later are activity when credited.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(r.m.runDir("web"), ActivityFile), old, old); err != nil {
		t.Fatal(err)
	}
	be.Activity(100)
	if fi, _ := os.Stat(filepath.Join(r.m.runDir("web"), ActivityFile)); fi.ModTime().Before(old.Add(time.Minute)) {
		t.Errorf("activity file at %v after a credit, want touched", fi.ModTime())
	}
}
