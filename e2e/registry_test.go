package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/testimage"
)

// TestNodeRegistryMirror: node.yaml's `registry:` section sends a pull of
// an image whose registry cannot be reached (a loopback address where
// nothing listens) to a mirror on 127.0.0.1; the pod runs, and the image
// is stored under the name the spec gave.
func TestNodeRegistryMirror(t *testing.T) {
	requireNode(t)
	blobs := &testimage.BlobCounter{}
	mirror := testimage.StartRegistry(t, blobs.Wrap)
	img := mustImage(t, testimage.Config{Cmd: []string{"/bin/sh"}}, []testimage.File{testimage.Reg("etc/mirrored", "yes\n", 0o644)})
	push(t, mirror, "e2e/mirrored:v1", img)
	const unreachable = "127.0.0.2:9" // nothing listens: a pull from it fails at once, on this host
	d := startDaemonWith(t, func(cfg string) string {
		return cfg + fmt.Sprintf("registry:\n  mirrors:\n    %q: [\"http://%s\"]\n", unreachable, mirror.Host)
	}, nil)
	ref := unreachable + "/e2e/mirrored:v1"
	spec := strings.Replace(webSpec("mirrored", ""), "baseImage: "+busybox, "baseImage: "+ref, 1)
	if _, r := d.create(spec); r.code != 0 {
		t.Fatalf("create from %s through the mirror: exit %d: %s", ref, r.code, r.stderr)
	}
	if blobs.Total() == 0 {
		t.Fatal("the mirror served no blob")
	}
	if r := d.cli("pod", "exec", "mirrored", "--", "cat", "/etc/mirrored"); r.code != 0 || r.stdout != "yes\n" {
		t.Fatalf("the pod does not run the mirrored image: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r := node(t, []string{"PINACLE_DATA_ROOT=" + d.dir + "/data"}, "image", "ls", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, ref) {
		t.Fatalf("image ls does not list %s: %s %s", ref, r.stdout, r.stderr)
	}
	// Without the mirror the same name cannot be pulled: the mirror is what made it work.
	if r := node(t, []string{"PINACLE_DATA_ROOT=" + t.TempDir()}, "image", "pull", ref); r.code == 0 {
		t.Fatalf("pull of %s without the mirror succeeded", ref)
	}
}
