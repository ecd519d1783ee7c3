package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/nodeconfig"
	ti "github.com/pinacle/pinacle-node/internal/testimage"
)

// runNodeCLI runs the whole pinacle-node command tree in-process.
func runNodeCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, err := root.ExecuteContextC(ctx)
	return out.String(), cli.HandleError(cmd, err)
}

// image pull honours node.yaml's registry: section, as serve does, and a
// --mirror for the same host replaces the file's mirrors.
func TestImagePullUsesNodeConfigRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root: unpacking layers chowns files to their owners")
	}
	t.Setenv(envMirrors, "")
	t.Setenv(envInsecure, "")
	mirror := ti.StartRegistry(t, nil)
	img, err := ti.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.Push(context.Background(), "lib/m:1", img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "node.yaml")
	// registry.invalid resolves nowhere: only the mirror can serve it.
	yaml := fmt.Sprintf("registry:\n  mirrors:\n    registry.invalid: [\"http://%s\"]\n", mirror.Host)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := "registry.invalid/lib/m:1"

	out, code := runNodeCLI(t, "image", "pull", "--config", conf, "--data-root", filepath.Join(dir, "a"), "-o", "json", ref)
	if code != 0 {
		t.Fatalf("pull through node.yaml's mirror: exit %d: %s", code, out)
	}
	// Without the file's mirror the pull has nowhere to go.
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = runNodeCLI(t, "image", "pull", "--config", empty, "--data-root", filepath.Join(dir, "b"), "-o", "json", ref)
	if code == 0 {
		t.Fatalf("pull without a mirror succeeded: %s", out)
	}
	// A --mirror for the host replaces the file's (here with one that is down).
	out, code = runNodeCLI(t, "image", "pull", "--config", conf, "--data-root", filepath.Join(dir, "c"),
		"--mirror", "registry.invalid=http://127.0.0.1:1", "-o", "json", ref)
	if code == 0 {
		t.Fatalf("pull with the file's mirror replaced by a dead one succeeded: %s", out)
	}
	// ls sees what the first pull stored.
	out, code = runNodeCLI(t, "image", "ls", "--config", conf, "--data-root", filepath.Join(dir, "a"), "-o", "json")
	var imgs []struct{ Refs []string }
	if code != 0 || json.Unmarshal([]byte(out), &imgs) != nil || len(imgs) != 1 || !strings.Contains(strings.Join(imgs[0].Refs, ","), ref) {
		t.Fatalf("image ls: exit %d: %s", code, out)
	}
}

func TestApplyRegistryFlags(t *testing.T) {
	t.Setenv(envMirrors, "docker.io=http://env.example")
	t.Setenv(envInsecure, "lan:5000")
	cmd := newImageCmd()
	if err := cmd.ParseFlags([]string{
		"--mirror", "docker.io=http://flag.example", "--mirror", "quay.io=https://q.example",
		"--insecure-registry", "file.example:5000", "--insecure-registry", "flag:5000",
	}); err != nil {
		t.Fatal(err)
	}
	cfg := &nodeconfig.Config{}
	cfg.Registry.Mirrors = map[string][]string{"docker.io": {"http://file.example"}, "ghcr.io": {"http://g.example"}}
	cfg.Registry.InsecureRegistries = []string{"file.example:5000"}
	if err := applyRegistryFlags(cmd, cfg); err != nil {
		t.Fatal(err)
	}
	wantMirrors := map[string][]string{
		"docker.io": {"http://env.example", "http://flag.example"}, // replaces the file's
		"ghcr.io":   {"http://g.example"},                          // kept from the file
		"quay.io":   {"https://q.example"},
	}
	if !reflect.DeepEqual(cfg.Registry.Mirrors, wantMirrors) {
		t.Errorf("mirrors %v, want %v", cfg.Registry.Mirrors, wantMirrors)
	}
	if want := []string{"file.example:5000", "lan:5000", "flag:5000"}; !reflect.DeepEqual(cfg.Registry.InsecureRegistries, want) {
		t.Errorf("insecure registries %v, want %v", cfg.Registry.InsecureRegistries, want)
	}
	if err := cmd.ParseFlags([]string{"--mirror", "no-equals"}); err != nil {
		t.Fatal(err)
	}
	if err := applyRegistryFlags(cmd, &nodeconfig.Config{}); err == nil {
		t.Error("--mirror without HOST=URL accepted")
	}
}
