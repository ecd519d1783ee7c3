package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/pods"
	"github.com/pinacle/pinacle-node/internal/testimage"
)

// TestNodeCrashDuringStart kills the daemon (SIGKILL, at each named point
// of the start path) while it starts a stopped pod, starts it again, and
// checks that the pod ends up running and serving: recovery undoes the
// half-done start and does it again.
func TestNodeCrashDuringStart(t *testing.T) {
	d := startDaemon(t)
	for i, point := range pods.CrashPoints["create"] {
		if point == "up:recorded" {
			continue // create only: a start has its record already
		}
		name := fmt.Sprintf("crash-start-%d", i)
		t.Run(point, func(t *testing.T) {
			if _, r := d.create(webSpec(name, "")); r.code != 0 {
				t.Fatalf("create: %s", r.stderr)
			}
			if r := d.cli("pod", "stop", name); r.code != 0 {
				t.Fatalf("stop: %s", r.stderr)
			}
			d.stop()
			d.start("PINACLE_CRASH_AT=" + point)
			d.cli("pod", "start", name)
			if !d.exited(60 * time.Second) {
				t.Fatalf("daemon did not reach crash point %s", point)
			}
			d.start()
			var p podView
			poll(t, 60*time.Second, fmt.Sprintf("pod %s running after recovery", name), func() bool {
				var r result
				p, r = d.get(name)
				return r.code == 0 && p.State == "running"
			})
			if body, err := httpGet(p.Ports[0].URL+"/index.html", 10*time.Second); err != nil || strings.TrimSpace(body) != name {
				t.Fatalf("recovered pod does not serve: %q %v", body, err)
			}
			if r := d.cli("pod", "delete", name); r.code != 0 {
				t.Fatalf("delete: %s", r.stderr)
			}
		})
	}
}

// blockBlobs holds every blob download of a registry until released, and
// says when the first one arrives: a pull caught in the middle.
type blockBlobs struct {
	hit, release chan struct{}
	once         sync.Once
}

func (b *blockBlobs) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			select {
			case <-b.release:
			default:
				b.once.Do(func() { close(b.hit) })
				select {
				case <-b.release:
				case <-r.Context().Done():
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// TestNodeCrashDuringImagePull kills the daemon (SIGKILL) while a pod's
// image is being downloaded, then starts it again: the pod is provisioned
// from the start (the image pulled again) and serves, and the image store
// holds no partial layer.
func TestNodeCrashDuringImagePull(t *testing.T) {
	d := startDaemon(t)
	bb := &blockBlobs{hit: make(chan struct{}), release: make(chan struct{})}
	reg := testimage.StartRegistry(t, bb.wrap)
	// A layer of its own, so the pull has blobs to fetch that the
	// imported busybox did not bring.
	img := mustImage(t, testimage.Config{Cmd: []string{"/bin/sh"}}, []testimage.File{testimage.Reg("etc/pulled-by", t.Name(), 0o644)})
	ref := push(t, reg, "e2e/pulled:v1", img)
	spec := strings.Replace(webSpec("midpull", ""), "baseImage: "+busybox, "baseImage: "+ref, 1)
	if _, r := d.create(spec, "--wait=false"); r.code != 0 {
		t.Fatalf("create --wait=false: exit %d: %s", r.code, r.stderr)
	}
	select {
	case <-bb.hit:
	case <-time.After(60 * time.Second):
		t.Fatal("the pull never asked for a blob")
	}
	// The pod took a warm network; let the pool refill first, so the kill
	// lands in the pull alone (a kill in the refill is the crash-point
	// tests' business).
	poll(t, 30*time.Second, "the warm pool refilled", func() bool { return len(d.warmEntries()) == 2 })
	d.kill()
	close(bb.release)
	d.start()
	var p podView
	poll(t, 120*time.Second, "pod running after recovery", func() bool {
		var r result
		p, r = d.get("midpull")
		return r.code == 0 && p.State == "running"
	})
	if body, err := httpGet(p.Ports[0].URL+"/index.html", 10*time.Second); err != nil || strings.TrimSpace(body) != "midpull" {
		t.Fatalf("recovered pod does not serve: %q %v", body, err)
	}
	if r := d.cli("pod", "events", "midpull"); !strings.Contains(r.stdout, "node restarted during") {
		t.Errorf("no event says the node restarted mid-provisioning:\n%s", r.stdout)
	}
	ents, _ := os.ReadDir(filepath.Join(d.dir, "data", "layers"))
	for _, e := range ents {
		if strings.Contains(e.Name(), "tmp") || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("partial layer left behind: %s", e.Name())
		}
	}
	if r := d.cli("pod", "delete", "midpull"); r.code != 0 {
		t.Fatalf("delete: %s", r.stderr)
	}
}

// TestNodeCrashMidInstall kills the daemon right after a pod's sandbox
// started, while the service's install has made its creates path (empty)
// and is still working. Recovery removes that sandbox and starts the pod
// again: the install must run again rather than the half-made path pass
// for a finished install (TestNodeCrashSafety/create@up:sandbox once
// served an empty index.html this way).
func TestNodeCrashMidInstall(t *testing.T) {
	d := startDaemon(t)
	// The first install stops half-way (until recovery kills it); the one
	// after the restart finds /srv/first and finishes.
	spec := strings.Replace(webSpec("midinstall", ""),
		`install: [sh, -c, "mkdir -p /srv && hostname > /srv/index.html && head -c 4000000 /dev/urandom > /srv/big"]`,
		`install: [sh, -c, "mkdir -p /srv && : > /srv/index.html && if [ ! -e /srv/first ]; then touch /srv/first; sleep 600; fi; hostname > /srv/index.html"]`, 1)
	if !strings.Contains(spec, "sleep 600") {
		t.Fatal("webSpec's install changed; update this test's")
	}
	d.stop()
	d.start("PINACLE_CRASH_AT=up:sandbox")
	d.create(spec, "--wait=false")
	if !d.exited(60 * time.Second) {
		t.Fatal("daemon did not reach crash point up:sandbox")
	}
	// The first install has begun (its marker file exists) before the
	// node comes back and tears the sandbox down.
	var rootfs string
	poll(t, 60*time.Second, "the first install under way", func() bool {
		m, _ := filepath.Glob(filepath.Join(d.dir, "data", "pods", "*", "rootfs", "srv", "first"))
		if len(m) == 1 {
			rootfs = filepath.Dir(filepath.Dir(m[0]))
		}
		return len(m) == 1
	})
	d.start()
	var p podView
	poll(t, 120*time.Second, "pod running after recovery", func() bool {
		var r result
		p, r = d.get("midinstall")
		return r.code == 0 && p.State == "running"
	})
	if body, err := httpGet(p.Ports[0].URL+"/index.html", 10*time.Second); err != nil || strings.TrimSpace(body) != "midinstall" {
		t.Fatalf("recovered pod serves %q, %v; want its name (the interrupted install run again); rootfs %s", body, err, rootfs)
	}
	if r := d.cli("pod", "logs", "midinstall", "web"); !strings.Contains(r.stdout, "earlier install did not finish") {
		t.Errorf("the service log does not say the install ran again:\n%s%s", r.stdout, r.stderr)
	}
	if r := d.cli("pod", "delete", "midinstall"); r.code != 0 {
		t.Fatalf("delete: %s", r.stderr)
	}
}
