package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"
)

// TestNodeCreateFromRepository: a pod with githubRepo and no template gets
// the repository cloned into its workspace and the template detected from
// it. The "GitHub" here is a bare repository on disk (git.baseURL file://),
// and the detected nextjs template is a user template that runs offline.
func TestNodeCreateFromRepository(t *testing.T) {
	requireNode(t)
	testenv.RequireBinary(t, "git") // make setup installs it
	base := t.TempDir()
	work := filepath.Join(base, "work")
	gitRun := func(dir string, args ...string) {
		t.Helper()
		c := exec.Command("git", args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, "package.json"), []byte(`{"name":"shop","dependencies":{"next":"14.2.0","react":"18"}}`), 0o644)
	os.WriteFile(filepath.Join(work, "index.html"), []byte("shop from git\n"), 0o644)
	gitRun(work, "init", "-q", "-b", "main")
	gitRun(work, "add", ".")
	gitRun(work, "commit", "-q", "-m", "init")
	bare := filepath.Join(base, "git", "acme", "shop.git")
	gitRun(base, "clone", "-q", "--bare", work, bare)

	d := startDaemonWith(t, func(cfg string) string {
		return cfg + fmt.Sprintf("git: {baseURL: \"file://%s/git\"}\n", base)
	}, func(dir string) {
		// A user template named like the built-in overrides it.
		os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
		os.WriteFile(filepath.Join(dir, "templates", "nextjs.yaml"), []byte(`name: nextjs
description: offline stand-in for the Next.js template
spec:
  baseImage: `+busybox+`
  resources: {tier: dev.small, memoryMb: 256, storageMb: 1024}
  workingDir: /workspace
  network:
    ports: [{name: app, internal: 3000}]
  services:
    - name: app
      command: [httpd, -f, -p, "3000", -h, /workspace]
      healthCheck: {type: http, port: 3000, path: /index.html, interval: 1s, timeout: 500ms}
`), 0o644)
	})
	p, r := d.create("name: shop\ngithubRepo: acme/shop\ngithubBranch: main\n")
	if r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	if body, err := httpGet(p.Ports[0].URL+"/index.html", 5*time.Second); err != nil || body != "shop from git\n" {
		t.Fatalf("GET the cloned page = %q, %v", body, err)
	}
	if r := d.cli("pod", "get", "shop", "-o", "json"); !strings.Contains(r.stdout, `"template": "nextjs"`) {
		t.Fatalf("template not detected as nextjs: %s", r.stdout)
	}
	if r := d.cli("pod", "events", "shop"); !strings.Contains(r.stdout, "detected template nextjs") {
		t.Fatalf("no detection event: %s", r.stdout)
	}
	// A repository that does not exist is a clear not_found, and leaves nothing.
	_, r = d.create("name: nope\ngithubRepo: acme/nope\n")
	if r.code != 3 || !strings.Contains(r.stderr, "acme/nope") {
		t.Fatalf("missing repository: exit %d: %s", r.code, r.stderr)
	}
	if _, r := d.get("nope"); r.code != 3 {
		t.Fatalf("a failed clone left a pod: %s", r.stdout)
	}
}
