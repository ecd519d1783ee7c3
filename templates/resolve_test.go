package templates

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

func TestResolveUserOverrides(t *testing.T) {
	r := Builtin()
	p, err := podspec.DecodeWithSets([]byte(`
name: shop
template: nextjs
environment: {NODE_ENV: production, API_URL: "http://localhost:8000"}
network:
  ports:
    - {name: app, external: 30080}
services:
  - name: code-server
    env: {THEME: dark}
  - name: app
    command: [npm, run, dev]
    port: 3000
    dependsOn: [code-server]
    healthCheck: {type: http}
`), []string{"resources.tier=dev.large", "resources.memoryMb=3072"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.BaseImage != "docker.io/library/node:20-bookworm" || got.Slug != "shop" || got.Template != "nextjs" {
		t.Errorf("scalars: %+v", got)
	}
	if got.Resources != (podspec.Resources{Tier: "dev.large", CPUCores: 4, MemoryMB: 3072, StorageMB: 40960}) {
		t.Errorf("resources = %+v", got.Resources)
	}
	if got.Environment["NODE_ENV"] != "production" || got.Environment["NEXT_TELEMETRY_DISABLED"] != "1" || got.Environment["API_URL"] == "" {
		t.Errorf("environment = %v", got.Environment)
	}
	if pt := got.Network.Ports[0]; pt.Name != "app" || pt.Internal != 3000 || pt.External != 30080 {
		t.Errorf("ports[0] = %+v", pt)
	}
	var names []string
	for _, s := range got.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "code-server,vibe-kanban,web-terminal,app" {
		t.Errorf("services = %v", names)
	}
	cs := got.Services[0]
	if cs.Env["THEME"] != "dark" || cs.Port != 8080 || cs.Creates != "/usr/local/bin/code-server" || cs.HealthCheck.Path != "/healthz" {
		t.Errorf("code-server = %+v", cs)
	}
	if hc := got.Services[3].HealthCheck; hc.Port != 3000 || hc.Path != "/" {
		t.Errorf("app health check = %+v", hc)
	}
	if _, err := got.Resources.Limits(); err != nil {
		t.Error(err)
	}
	// Resolve does not modify its input and is deterministic.
	again, _ := r.Resolve(p)
	if p.BaseImage != "" || len(p.Services) != 2 || again.Services[0].Env["THEME"] != "dark" {
		t.Error("Resolve modified its input or is not deterministic")
	}
}

func TestResolveErrors(t *testing.T) {
	r := Builtin()
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{"name: x\ntemplate: rails\n", []string{`template: unknown template "rails" (known: custom, datascience, mastra, minimal, nextjs, nodejs)`}},
		{"name: x\n", []string{"baseImage: required"}},
		{"name: x\ntemplate: nodejs\nresources: {tier: dev.medium, cpuCores: 3}\nservices: [{name: api, command: [node, .], dependsOn: [db]}]\n",
			[]string{"resources.cpuCores: 3 is above dev.medium's maximum 2", `services[1].dependsOn[0]: unknown service "db"`}},
		{"name: x\ntemplate: custom\nservices: [{name: app, command: [x], port: 8080}]\n",
			[]string{"services[2].port: port 8080 is also used by services[0] (code-server)"}},
		{"name: x\ntemplate: custom\nnetwork: {ports: [{name: other, internal: 8080}]}\n",
			[]string{"network.ports[2].internal: port 8080/tcp is also network.ports[0]"}},
	} {
		p, err := podspec.Decode([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Resolve(p)
		var ve *podspec.ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("%s: got %v, want a ValidationError", tc.doc, err)
		}
		if len(ve.Errors) != len(tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.doc, err, tc.want)
		}
		for i, w := range tc.want {
			if ve.Errors[i].Error() != w {
				t.Errorf("error %d = %q, want %q", i, ve.Errors[i].Error(), w)
			}
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestUserTemplates(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		// Overrides the built-in nextjs, building on it.
		"nextjs.yaml": "name: nextjs\ndescription: ours\nextends: nextjs\nspec:\n  baseImage: docker.io/library/node:22-bookworm\n",
		// A new template on top of the user's nextjs.
		"shop.yml": "extends: nextjs\nspec:\n  environment: {SHOP: \"1\"}\n  services: [{name: redis}]\n",
		// A user service definition, used by shop.
		"services/redis.yaml": "command: [redis-server]\nport: 6379\nhealthCheck: {type: tcp}\n",
		// Broken in different ways; none may hide the others.
		"typo.yaml":     "name: typo\nspec:\n  baseImage: docker.io/library/ubuntu:22.04\n  network: {ports: [{name: a, internal: 1, extrnal: 30000}]}\n",
		"badimage.yaml": "name: badimage\nspec: {baseImage: ubuntu}\n",
		"loop-a.yaml":   "extends: loop-b\nspec: {baseImage: docker.io/library/ubuntu:22.04}\n",
		"loop-b.yaml":   "extends: loop-a\n",
		"orphan.yaml":   "extends: nothing\n",
		"custom.yaml":   "spec: {resources: {tier: dev.huge}}\n", // broken override: the built-in stays
		"podname.yaml":  "spec: {name: mine, baseImage: docker.io/library/ubuntu:22.04}\n",
		"notes.txt":     "not a template",
	})
	r, warns, err := Load(context.Background(), WithDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Names(), ","); got != "custom,datascience,mastra,minimal,nextjs,nodejs,shop" {
		t.Errorf("Names() = %s", got)
	}
	wantWarn := map[string]string{
		"typo.yaml":     "spec.network.ports[0].extrnal: unknown field",
		"badimage.yaml": `baseImage: "ubuntu" is not a fully qualified image reference`,
		"loop-a.yaml":   "extends: cycle: loop-a -> loop-b -> loop-a",
		"loop-b.yaml":   "extends: cycle: loop-b -> loop-a -> loop-b",
		"orphan.yaml":   `template "orphan" extends unknown template "nothing"`,
		"custom.yaml":   `resources.tier: unknown tier "dev.huge"`,
		"podname.yaml":  "spec.name: not allowed in a template",
	}
	if len(warns) != len(wantWarn) {
		t.Errorf("got %d warnings, want %d: %v", len(warns), len(wantWarn), warns)
	}
	for _, w := range warns {
		if want := wantWarn[filepath.Base(w.Path)]; want == "" || !strings.Contains(w.Error(), want) {
			t.Errorf("warning %q, want one containing %q", w.Error(), want)
		}
	}
	next, _ := r.Get("nextjs")
	if next.Source != SourceUser || next.Description != "ours" {
		t.Errorf("nextjs = %+v", next)
	}
	if c, _ := r.Get("custom"); c.Source != SourceBuiltin {
		t.Errorf("broken custom override replaced the built-in")
	}
	shop, err := r.ResolveTemplate("shop")
	if err != nil {
		t.Fatal(err)
	}
	if shop.Spec.BaseImage != "docker.io/library/node:22-bookworm" || shop.Spec.Environment["SHOP"] != "1" ||
		shop.Spec.Environment["NODE_ENV"] != "development" || shop.Description != "ours" {
		t.Errorf("shop = %+v", shop.Spec)
	}
	if last := shop.Spec.Services[len(shop.Spec.Services)-1]; last.Name != "redis" || last.Port != 6379 || last.HealthCheck.Port != 6379 {
		t.Errorf("redis service = %+v", last)
	}
	if _, src, ok := r.Service("redis"); !ok || src != SourceUser {
		t.Error("user service definition not loaded")
	}
	// A missing directory holds no templates and is no warning.
	if _, warns, err := Load(context.Background(), WithDir(filepath.Join(dir, "none"))); err != nil || len(warns) != 0 {
		t.Errorf("missing dir: %v %v", warns, err)
	}
	if _, _, err := Load(context.Background(), WithDir("")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty dir option: %v", err)
	}
}

func TestBuiltinServiceDefinitions(t *testing.T) {
	r := Builtin()
	want := "claude-code,code-server,jupyter,vibe-kanban,web-terminal"
	if got := strings.Join(r.ServiceNames(), ","); got != want {
		t.Fatalf("ServiceNames() = %s, want %s", got, want)
	}
	for _, n := range r.ServiceNames() {
		s, _, _ := r.Service(n)
		p := &podspec.Pod{Name: "check", BaseImage: "docker.io/library/ubuntu:22.04", Services: []podspec.Service{s}}
		p.Default()
		if err := p.Validate(); err != nil {
			t.Errorf("service %s: %v", n, err)
		}
		// A service run by the node's own binary (bind-mounted into every
		// pod) has nothing to install; every other needs its install step.
		if strings.HasPrefix(s.Command[0], "/.pinacle/bin/") {
			if len(s.Install) != 0 || s.Creates != "" {
				t.Errorf("service %s runs the node binary but has an install step", n)
			}
		} else if len(s.Install) == 0 || s.Creates == "" {
			t.Errorf("service %s has no install step", n)
		}
	}
	if s, _, _ := r.Service("web-terminal"); s.Port != 3003 || s.Command[0] != "/.pinacle/bin/pinacle-node" {
		t.Errorf("web-terminal port = %d, command %v", s.Port, s.Command)
	}
}

// TestResolveDocumentLeavesNodeIDEmpty: a document without an ID resolves
// as a create would, with the ID the node would generate (and the name
// that defaults to it) left empty.
func TestResolveDocumentLeavesNodeIDEmpty(t *testing.T) {
	r := Builtin()
	p, err := r.ResolveDocument([]byte("template: nodejs\n"), "", []string{"resources.tier=dev.large"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "" || p.Name != "" || p.Template != "nodejs" || p.Resources.Tier != "dev.large" {
		t.Fatalf("id %q name %q template %q tier %q", p.ID, p.Name, p.Template, p.Resources.Tier)
	}
	p, err = r.ResolveDocument([]byte("id: x1\ntemplate: nodejs\n"), "", nil)
	if err != nil || p.ID != "x1" || p.Name != "x1" {
		t.Fatalf("%+v %v", p, err)
	}
}
