package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The template commands through the real binary: what a user sees when
// choosing a template, without a node.
func TestTemplateCommands(t *testing.T) {
	requireNode(t)
	tdir := []string{"--templates-dir", filepath.Join(t.TempDir(), "none")} // builtins only
	r := node(t, nil, append([]string{"template", "ls", "-o", "json"}, tdir...)...)
	var ls []struct {
		Name, Image, Tier, Source string
		Services                  []string
	}
	if err := json.Unmarshal([]byte(r.stdout), &ls); r.code != 0 || err != nil {
		t.Fatalf("template ls -o json: exit %d %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	byName := map[string]int{}
	for i, tm := range ls {
		byName[tm.Name] = i
	}
	for _, want := range []string{"minimal", "nextjs", "nodejs", "custom"} {
		if _, ok := byName[want]; !ok {
			t.Errorf("template ls lacks %s: %s", want, r.stdout)
		}
	}
	if i, ok := byName["minimal"]; ok && (ls[i].Image != busybox || ls[i].Source != "builtin" || !slices.Contains(ls[i].Services, "web-terminal")) {
		t.Errorf("minimal in template ls = %+v", ls[i])
	}

	r = node(t, nil, append([]string{"template", "show", "minimal"}, tdir...)...)
	if r.code != 0 || !strings.Contains(r.stdout, busybox) || !strings.Contains(r.stdout, "terminal 3003/tcp") {
		t.Errorf("template show minimal: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r = node(t, nil, append([]string{"template", "show", "nosuch"}, tdir...)...)
	if r.code != 3 || !strings.Contains(r.stderr, "minimal") {
		t.Errorf("template show of an unknown template: exit %d, want 3 naming the known ones: %s", r.code, r.stderr)
	}

	r = node(t, nil, "template", "tiers", "-o", "json")
	var tiers []struct {
		Name      string
		MemoryMB  int `json:"memoryMb"`
		StorageMB int `json:"storageMb"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &tiers); r.code != 0 || err != nil || len(tiers) == 0 {
		t.Fatalf("template tiers -o json: exit %d %v: %s", r.code, err, r.stdout)
	}
	if tiers[0].Name != "dev.small" || tiers[0].MemoryMB <= 0 || tiers[0].StorageMB <= 0 {
		t.Errorf("first tier = %+v, want dev.small with memory and storage", tiers[0])
	}

	for _, c := range []struct{ file, body, want string }{
		{"package.json", `{"dependencies": {"next": "14.0.0"}}`, "nextjs"},
		{"package.json", `{"dependencies": {"express": "4.0.0"}}`, "nodejs"},
		{"README", "nothing to go on", "custom"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		r := node(t, nil, "template", "detect", dir, "-o", "json")
		var det struct{ Template, Reason string }
		if err := json.Unmarshal([]byte(r.stdout), &det); r.code != 0 || err != nil || det.Template != c.want || det.Reason == "" {
			t.Errorf("template detect of %s %s: exit %d %v: %s, want %s with a reason", c.file, c.body, r.code, err, r.stdout, c.want)
		}
	}
}

// `pod validate -f` names every bad field and exits 5 (invalid_argument,
// docs/cli.md); a good spec prints the resolved spec and exits 0.
func TestPodValidateCommand(t *testing.T) {
	requireNode(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: bad\nbaseImage: "+busybox+"\nresources: {tier: dev.huge}\nnetwork:\n  ports: [{name: web, internal: 70000}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := node(t, nil, "pod", "validate", "-f", bad)
	if r.code != 5 || !strings.Contains(r.stderr, "resources.tier") || !strings.Contains(r.stderr, "network.ports[0].internal") {
		t.Fatalf("validate of a bad spec: exit %d, want 5 naming both fields: %s", r.code, r.stderr)
	}
	r = node(t, nil, "pod", "validate", "-f", bad, "-o", "json")
	var out struct {
		Errors []struct{ Field, Message string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 5 || err != nil {
		t.Fatalf("validate -o json: exit %d %v: %s", r.code, err, r.stdout)
	}
	var fields []string
	for _, e := range out.Errors {
		fields = append(fields, e.Field)
	}
	if !slices.Contains(fields, "resources.tier") || !slices.Contains(fields, "network.ports[0].internal") {
		t.Fatalf("validate -o json errors = %+v", out.Errors)
	}
	if !strings.Contains(r.stderr, `"code":"invalid_argument"`) {
		t.Fatalf("validate -o json stderr = %s", r.stderr)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("name: u\nbaseImage: "+busybox+"\nservicez: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := node(t, nil, "pod", "validate", "-f", unknown); r.code != 5 || !strings.Contains(r.stderr, "servicez") {
		t.Fatalf("validate of an unknown field: exit %d: %s", r.code, r.stderr)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("name: good\ntemplate: minimal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = node(t, nil, "pod", "validate", "-f", good, "-o", "json")
	var spec struct {
		Name, BaseImage string
	}
	if err := json.Unmarshal([]byte(r.stdout), &spec); r.code != 0 || err != nil || spec.Name != "good" || spec.BaseImage != busybox {
		t.Fatalf("validate of a good spec: exit %d %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
}
