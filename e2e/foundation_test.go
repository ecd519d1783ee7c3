package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"

	"github.com/pinacle/pinacle-node/internal/testimage"
	"github.com/pinacle/pinacle-node/oci"
)

// env gives one test its own data root and runsc root.
func testEnv(t *testing.T) []string {
	t.Helper()
	dir, err := os.MkdirTemp(workRoot, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	runscRoot := filepath.Join(dir, "runsc")
	t.Cleanup(func() {
		// Every sandbox must be gone; then drop runsc's per-root netns pin.
		out, _ := exec.Command("runsc", "--root", runscRoot, "list", "-quiet").Output()
		if ids := strings.TrimSpace(string(out)); ids != "" {
			t.Errorf("runsc containers left in %s: %s", runscRoot, ids)
		}
		if err := oci.ReleaseRoot(runscRoot); err != nil {
			t.Error(err)
		}
	})
	return []string{"PINACLE_DATA_ROOT=" + filepath.Join(dir, "data"), "PINACLE_RUNSC_ROOT=" + runscRoot}
}

func push(t *testing.T, reg *testimage.Registry, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := reg.Push(context.Background(), repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func mustImage(t *testing.T, cfg testimage.Config, layers ...[]testimage.File) v1.Image {
	t.Helper()
	img, err := testimage.Image(cfg, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPullUnpackRunOutput(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	reg := testimage.StartRegistry(t, nil)
	img := mustImage(t, testimage.Config{Env: []string{"GREETING=hello"}, Cmd: []string{"sh", "-c", "echo $GREETING from image"}},
		[]testimage.File{testimage.Reg("etc/motd", "layer two\n", 0o644)})
	ref := push(t, reg, "e2e/hello:v1", img)

	if r := node(t, env, "image", "pull", ref); r.code != 0 {
		t.Fatalf("pull: exit %d: %s", r.code, r.stderr)
	}
	r := node(t, env, "image", "ls", "-o", "json")
	var imgs []struct {
		Refs   []string `json:"refs"`
		Layers []any    `json:"layers"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &imgs); err != nil || len(imgs) != 1 || imgs[0].Refs[0] != ref || len(imgs[0].Layers) != 2 {
		t.Fatalf("image ls -o json = %s (%v)", r.stdout, err)
	}
	// The image's own command, then a command line, with its exit code.
	if r := node(t, env, "run", ref); r.code != 0 || r.stdout != "hello from image\n" {
		t.Fatalf("run default cmd: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	r = node(t, env, "run", ref, "--", "sh", "-c", "cat /etc/motd; echo oops >&2; exit 7")
	if r.code != 7 || r.stdout != "layer two\n" || !strings.Contains(r.stderr, "oops") {
		t.Fatalf("run: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestWhiteoutsInRootfs(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	reg := testimage.StartRegistry(t, nil)
	img := mustImage(t, testimage.Config{},
		[]testimage.File{
			testimage.Reg("data/keep", "k", 0o644),
			testimage.Reg("data/gone", "g", 0o644),
			testimage.Dir("opq", 0o755),
			testimage.Reg("opq/old", "o", 0o644),
		},
		[]testimage.File{
			testimage.Whiteout("data/gone"),
			testimage.Opaque("opq"),
			testimage.Reg("opq/new", "n", 0o644),
		})
	ref := push(t, reg, "e2e/whiteouts:v1", img)
	r := node(t, env, "run", ref, "--", "sh", "-c", "ls /data; echo --; ls /opq")
	if r.code != 0 || r.stdout != "keep\n--\nnew\n" {
		t.Fatalf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	ref := busyboxRef(t, env)
	// A hog: keep doubling a shell variable until the 64 MiB limit kills the sandbox.
	r := node(t, env, "run", "--memory", "64M", ref, "--", "sh", "-c", `x=0123456789abcdef; while :; do x="$x$x"; done`)
	if r.code == 0 || !strings.Contains(r.stderr, "out of memory") {
		t.Fatalf("hog: exit %d stderr %q; want a non-zero exit reported as out of memory", r.code, r.stderr)
	}
	// The same command with room to spare stays alive until its own end.
	r = node(t, env, "run", "--memory", "256M", ref, "--", "sh", "-c", `x=0123456789abcdef; i=0; while [ $i -lt 10 ]; do x="$x$x"; i=$((i+1)); done; echo ${#x}`)
	if r.code != 0 || r.stdout != "16384\n" {
		t.Fatalf("small: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestStorageCap(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	ref := busyboxRef(t, env)
	r := node(t, env, "run", "--storage", "64M", ref, "--", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=100")
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Fatalf("dd past the cap: exit %d stderr %q", r.code, r.stderr)
	}
	r = node(t, env, "run", "--storage", "64M", ref, "--", "dd", "if=/dev/zero", "of=/small", "bs=1M", "count=10")
	if r.code != 0 {
		t.Fatalf("dd within the cap: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestHostileLayerRejected(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	reg := testimage.StartRegistry(t, nil)
	victim := filepath.Join(workRoot, "escaped-"+filepath.Base(t.TempDir()))
	img := mustImage(t, testimage.Config{}, []testimage.File{
		{Path: "../../../../../../../../" + strings.TrimPrefix(victim, "/"), Data: []byte("pwned"), Mode: 0o644, Raw: true},
	})
	ref := push(t, reg, "e2e/hostile:v1", img)
	r := node(t, env, "image", "pull", "-o", "json", ref)
	if r.code == 0 {
		t.Fatal("pull of a layer escaping its directory succeeded")
	}
	var body struct{ Code, Message string }
	if err := json.Unmarshal([]byte(lastLine(r.stderr)), &body); err != nil || body.Code != "invalid_argument" || !strings.Contains(body.Message, "..") {
		t.Fatalf("error = %q; want invalid_argument naming the entry", r.stderr)
	}
	if _, err := os.Stat(victim); !os.IsNotExist(err) {
		t.Fatalf("hostile entry was written outside the layer: %v", err)
	}
	if r := node(t, env, "image", "ls", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("store lists a rejected image: %s", r.stdout)
	}
}

func TestPullInterruptedThenRetried(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	cut := &testimage.CutBlobs{After: 4096}
	reg := testimage.StartRegistry(t, func(h http.Handler) http.Handler { return cut.Wrap(h) })
	big, err := testimage.Large(8<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := push(t, reg, "e2e/big:v1", big)
	cut.Arm(true)
	if r := node(t, env, "image", "pull", ref); r.code == 0 {
		t.Fatal("pull through a failing registry succeeded")
	}
	if cut.Cuts() == 0 {
		t.Fatal("the fault was never injected")
	}
	// Nothing half-written: no image listed, no layer directory, no temp files left.
	if r := node(t, env, "image", "ls", "-o", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("store lists a half-pulled image: %s", r.stdout)
	}
	dataRoot := strings.TrimPrefix(env[0], "PINACLE_DATA_ROOT=")
	if ents, _ := os.ReadDir(filepath.Join(dataRoot, "layers")); len(ents) > 0 {
		for _, e := range ents {
			// a complete layer is allowed (it was verified); a partial one is not
			if strings.Contains(e.Name(), "tmp") || strings.HasPrefix(e.Name(), ".") {
				t.Errorf("partial layer left behind: %s", e.Name())
			}
		}
	}
	cut.Arm(false)
	if r := node(t, env, "image", "pull", ref); r.code != 0 {
		t.Fatalf("retry: exit %d: %s", r.code, r.stderr)
	}
	if r := node(t, env, "run", ref, "--", "true"); r.code != 0 {
		t.Fatalf("run after retry: exit %d: %s", r.code, r.stderr)
	}
}

func TestImportRmGC(t *testing.T) {
	requireNode(t)
	env := testEnv(t)
	dir := t.TempDir()
	img := mustImage(t, testimage.Config{Cmd: []string{"echo", "imported"}}, []testimage.File{testimage.Reg("x", "x", 0o644)})
	tarPath := filepath.Join(dir, "save.tar")
	if err := testimage.WriteDockerSave(tarPath, map[string]v1.Image{"example.com/saved:v1": img}); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(dir, "layout")
	if err := testimage.WriteOCILayout(layout, map[string]v1.Image{"example.com/layout:v1": mustImage(t, testimage.Config{})}); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{tarPath, layout} {
		if r := node(t, env, "image", "import", src); r.code != 0 {
			t.Fatalf("import %s: exit %d: %s", src, r.code, r.stderr)
		}
	}
	if r := node(t, env, "run", "--no-pull", "example.com/saved:v1"); r.code != 0 || r.stdout != "imported\n" {
		t.Fatalf("run imported: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	dataRoot := strings.TrimPrefix(env[0], "PINACLE_DATA_ROOT=")
	count := func() int { ents, _ := os.ReadDir(filepath.Join(dataRoot, "layers")); return len(ents) }
	before := count()
	if r := node(t, env, "image", "rm", "example.com/saved:v1"); r.code != 0 {
		t.Fatalf("rm: exit %d: %s", r.code, r.stderr)
	}
	if r := node(t, env, "image", "gc"); r.code != 0 {
		t.Fatalf("gc: exit %d: %s", r.code, r.stderr)
	}
	// The saved image's own layer is gone; the shared busybox base stays (the layout image uses it).
	if after := count(); after != before-1 {
		t.Fatalf("layers before gc %d, after %d; want one freed", before, after)
	}
	if r := node(t, env, "run", "--no-pull", "example.com/saved:v1"); r.code != 125 {
		t.Fatalf("run of a removed image: exit %d, want 125", r.code)
	}
}

// busyboxRef imports the plain busybox image into env's store.
func busyboxRef(t *testing.T, env []string) string {
	t.Helper()
	img, err := testimage.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const ref = "pinacle.local/busybox:latest"
	if err := testimage.WriteOCILayout(dir, map[string]v1.Image{ref: img}); err != nil {
		t.Fatal(err)
	}
	if r := node(t, env, "image", "import", dir); r.code != 0 {
		t.Fatalf("import busybox: exit %d: %s", r.code, r.stderr)
	}
	return ref
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
