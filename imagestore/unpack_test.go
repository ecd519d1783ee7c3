package imagestore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/testenv"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	ti "github.com/pinacle/pinacle-node/internal/testimage"
)

// canary is an absolute path hostile seeds aim at; nothing may create it.
const canary = "/tmp/pinacle-fuzz-canary"

func unpackFiles(t *testing.T, lim unpackLimits, files ...ti.File) (string, error) {
	t.Helper()
	b, err := ti.Tar(files...)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = unpackTar(context.Background(), bytes.NewReader(b), dir, lim)
	return dir, err
}

var testLimits = unpackLimits{maxEntry: 1 << 20, maxLayer: 8 << 20}

func TestUnpackPreservesMetadata(t *testing.T) {
	requiresRoot(t)
	dir, err := unpackFiles(t, testLimits,
		ti.Dir("usr", 0o755),
		ti.File{Path: "usr/bin/su", Mode: 0o755 | fs.ModeSetuid, Data: []byte("x")},
		ti.File{Path: "home/dev", Mode: fs.ModeDir | 0o750, Uid: 1000, Gid: 1000},
		ti.File{Path: "home/dev/f", Mode: 0o600, Data: []byte("hi"), Uid: 1000, Gid: 1001, Xattrs: map[string]string{"user.k": "v", "trusted.overlay.redirect": "/x"}},
		ti.Symlink("bin", "usr/bin"),
		ti.Symlink("abs", "/etc/passwd"),
		ti.Hardlink("usr/bin/su2", "usr/bin/su"),
		ti.File{Path: "fifo", Mode: fs.ModeNamedPipe | 0o600},
		ti.Reg("bin/viasymlink", "inside", 0o644), // written through bin -> usr/bin
	)
	if err != nil {
		t.Fatal(err)
	}
	st := func(p string) unix.Stat_t {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := st("usr/bin/su"); s.Mode&0o7777 != 0o4755 || s.Nlink != 2 {
		t.Errorf("su mode %o nlink %d, want 4755 and 2", s.Mode&0o7777, s.Nlink)
	}
	if s := st("home/dev"); s.Uid != 1000 || s.Gid != 1000 || s.Mode&0o777 != 0o750 {
		t.Errorf("home/dev %d:%d %o", s.Uid, s.Gid, s.Mode&0o777)
	}
	if s := st("home/dev/f"); s.Uid != 1000 || s.Gid != 1001 || s.Mtim.Sec != ti.Epoch.Unix() {
		t.Errorf("f owner %d:%d mtime %d", s.Uid, s.Gid, s.Mtim.Sec)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "home/dev/f"), "user.k", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("user.k xattr: %q %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "home/dev/f"), "trusted.overlay.redirect", buf); err == nil {
		t.Error("a layer set trusted.overlay.redirect")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "abs")); l != "/etc/passwd" {
		t.Errorf("abs -> %q", l)
	}
	if s := st("fifo"); s.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo mode %o", s.Mode)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "usr/bin/viasymlink")); string(b) != "inside" {
		t.Errorf("write through in-layer symlink: %q", b)
	}
	if s := st("usr"); s.Mtim.Sec != ti.Epoch.Unix() {
		t.Errorf("dir mtime %d, want %d (set after children)", s.Mtim.Sec, ti.Epoch.Unix())
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	requiresRoot(t)
	dir, err := unpackFiles(t, testLimits,
		ti.Whiteout("etc/gone"),
		ti.Dir("opq", 0o755),
		ti.Opaque("opq"),
		ti.Reg("opq/new", "n", 0o644),
		ti.Opaque("implicit/dir"),
		ti.File{Path: "x/.wh..wh.plnk", Mode: 0o644}, // aufs metadata: skipped
	)
	if err != nil {
		t.Fatal(err)
	}
	var s unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/gone"), &s); err != nil || s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != 0 {
		t.Errorf("etc/gone: mode %o rdev %d err %v, want a 0:0 char device", s.Mode, s.Rdev, err)
	}
	for _, d := range []string{"opq", "implicit/dir"} {
		buf := make([]byte, 4)
		n, err := unix.Lgetxattr(filepath.Join(dir, d), overlayOpaqueXattr, buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("%s: opaque xattr %q %v", d, buf[:n], err)
		}
	}
	for _, p := range []string{"etc/.wh.gone", "opq/.wh..wh..opq", "x/.wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s exists: whiteout markers must be converted, not copied", p)
		}
	}
}

// hostile layers: each must fail naming the entry, as invalid argument,
// and write nothing outside the layer directory.
func hostileCases(outside string) map[string][]ti.File {
	return map[string][]ti.File{
		"dotdot":           {{Path: "../escape", Data: []byte("x"), Raw: true}},
		"dotdot-inner":     {{Path: "a/../../escape", Data: []byte("x"), Raw: true}},
		"absolute":         {{Path: canary, Data: []byte("x"), Raw: true}},
		"symlink-out":      {ti.Symlink("lnk", "../../../../../../tmp")},
		"via-abs-symlink":  {ti.Symlink("lnk", filepath.Dir(outside)), ti.Reg("lnk/pwned", "x", 0o644)},
		"hardlink-out":     {ti.Hardlink("hl", "../outside/sentinel")},
		"hardlink-abs":     {ti.Hardlink("hl", outside)},
		"hardlink-via-sym": {ti.Symlink("s", filepath.Dir(outside)), ti.Hardlink("hl", "s/sentinel")},
		"chardev":          {{Path: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}},
		"blockdev":         {{Path: "dev/sda", Mode: fs.ModeDevice | 0o660}},
		"big-entry":        {{Path: "big", Data: make([]byte, 2<<20)}},
		"whiteout-dotdot":  {{Path: "a/.wh..", Raw: true}},
		"hardlink-dir":     {ti.Dir("d", 0o755), ti.Hardlink("hl", "d")},
	}
}

func TestUnpackRejectsHostile(t *testing.T) {
	requiresRoot(t)
	for name := range hostileCases("") {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside", "sentinel")
			files := hostileCases(outside)[name]
			os.MkdirAll(filepath.Dir(outside), 0o755)
			os.WriteFile(outside, []byte("sentinel"), 0o644)
			b, err := ti.Tar(files...)
			if err != nil {
				t.Fatal(err)
			}
			layer := filepath.Join(base, "layer")
			os.Mkdir(layer, 0o755)
			before := snapshot(t, filepath.Join(base, "outside"))
			_, err = unpackTar(context.Background(), bytes.NewReader(b), layer, testLimits)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want invalid argument", err)
			}
			last := files[len(files)-1].Path
			if !strings.Contains(err.Error(), last) && !strings.Contains(err.Error(), files[0].Path) {
				t.Errorf("error %q does not name the entry", err)
			}
			assertNothingOutside(t, base, before)
		})
	}
}

// A write through an in-layer symlink to "/" is resolved inside the layer,
// as the sandbox would see it, never on the host.
func TestUnpackContainsSymlinkWrites(t *testing.T) {
	requiresRoot(t)
	dir, err := unpackFiles(t, testLimits, ti.Symlink("lnk", "/"), ti.Reg("lnk/tmp/pinacle-fuzz-canary/x", "x", 0o644))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "tmp/pinacle-fuzz-canary/x")); err != nil || string(b) != "x" {
		t.Errorf("file not inside the layer: %q %v", b, err)
	}
	if _, err := os.Lstat(canary); err == nil {
		os.RemoveAll(canary)
		t.Errorf("%s was created on the host", canary)
	}
}

func TestUnpackLayerLimit(t *testing.T) {
	_, err := unpackFiles(t, unpackLimits{maxEntry: 1 << 20, maxLayer: 1 << 20},
		ti.File{Path: "a", Data: make([]byte, 800<<10)}, ti.File{Path: "b", Data: make([]byte, 800<<10)})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("err = %v, want invalid argument naming b", err)
	}
}

func assertNothingOutside(t *testing.T, base string, before map[string]string) {
	t.Helper()
	after := snapshot(t, filepath.Join(base, "outside"))
	if len(after) != len(before) {
		t.Errorf("outside dir changed: before %v after %v", before, after)
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("outside/%s changed", k)
		}
	}
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if e.Name() != "layer" && e.Name() != "outside" {
			t.Errorf("unexpected %s next to the layer dir", e.Name())
		}
	}
	if _, err := os.Lstat(canary); err == nil {
		os.RemoveAll(canary)
		t.Errorf("%s was created", canary)
	}
}

// FuzzUnpack feeds arbitrary tar streams to the unpacker and checks that
// nothing outside the layer directory appears or changes. Seeds in
// testdata/fuzz/FuzzUnpack cover the hostile cases (see TestWriteFuzzCorpus).
func FuzzUnpack(f *testing.F) {
	testenv.RequireRoot(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside", "sentinel")
		os.MkdirAll(filepath.Dir(outside), 0o755)
		os.WriteFile(outside, []byte("sentinel"), 0o644)
		layer := filepath.Join(base, "layer")
		os.Mkdir(layer, 0o755)
		before := snapshot(t, filepath.Join(base, "outside"))
		_, err := unpackTar(context.Background(), bytes.NewReader(data), layer, testLimits)
		if err != nil && strings.Contains(err.Error(), "layer entry") && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("entry error not classified: %v", err)
		}
		assertNothingOutside(t, base, before)
	})
}

// TestFuzzCorpusCurrent checks that testdata/fuzz/FuzzUnpack holds the
// seeds made from hostileCases, so a hostile case added to the unit tests
// also seeds the fuzzer; PINACLE_WRITE_FUZZ_CORPUS=1 rewrites them.
func TestFuzzCorpusCurrent(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzUnpack")
	write := os.Getenv("PINACLE_WRITE_FUZZ_CORPUS") == "1"
	for name, seed := range fuzzSeeds(t) {
		path := filepath.Join(dir, name)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, seed, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, seed) {
			t.Errorf("seed %s is missing or stale (%v): run PINACLE_WRITE_FUZZ_CORPUS=1 go test -run TestFuzzCorpusCurrent ./imagestore/", path, err)
		}
	}
}

// fuzzSeeds renders hostileCases as go-fuzz corpus files, by name.
func fuzzSeeds(t *testing.T) map[string][]byte {
	// The fuzz target's outside dir is per run; aim absolute seeds at the canary.
	cases := hostileCases(filepath.Join(canary, "sentinel"))
	cases["benign-whiteouts"] = []ti.File{ti.Dir("a", 0o755), ti.Reg("a/f", "x", 0o644), ti.Whiteout("a/g"), ti.Opaque("a"), ti.Symlink("l", "a"), ti.Hardlink("h", "a/f")}
	cases["via-root-symlink"] = []ti.File{ti.Symlink("lnk", "/"), ti.Reg("lnk/tmp/pinacle-fuzz-canary/x", "x", 0o644)}
	cases["replace-dir-with-symlink"] = []ti.File{ti.Dir("d", 0o755), ti.Reg("d/f", "x", 0o644), ti.Symlink("d", "/tmp"), ti.Reg("d/pinacle-fuzz-canary", "x", 0o644)}
	seeds := make(map[string][]byte, len(cases))
	for name, files := range cases {
		b, err := ti.Tar(files...)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 4096 {
			// The header declaring the size is what matters; large seeds
			// slow the fuzzing engine to a crawl.
			b = b[:4096]
		}
		seeds[name] = []byte("go test fuzz v1\n[]byte(" + strconvQuote(b) + ")\n")
	}
	return seeds
}
