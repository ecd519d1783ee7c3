package storeadapt

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/netns"
	"github.com/pinacle/pinacle-node/portfwd"
)

// writeOldFiles writes ports.json and netns/subnets.json under root in
// the shape the old file stores wrote (legacy.go), sorted by pod as they
// kept them.
func writeOldFiles(t *testing.T, root string, ports map[string][]portfwd.Allocation, subnets map[string]netip.Prefix) {
	t.Helper()
	write := func(path string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if ports != nil {
		f := legacyPortsFile{Version: legacyPortsVersion, Allocations: []portfwd.Allocation{}}
		for _, pod := range slices.Sorted(maps.Keys(ports)) {
			f.Allocations = append(f.Allocations, ports[pod]...)
		}
		write(filepath.Join(root, PortsFile), f)
	}
	if subnets != nil {
		write(filepath.Join(root, SubnetsFile), legacySubnetsFile{Subnets: subnets})
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, _ := boltTemp(t)
	createPods(t, st, "p1", "p2", "p3")
	p1 := []portfwd.Allocation{alloc("p1", "web", 3000, 25150), alloc("p1", "", 22, 25151)}
	p1[1].Explicit = true
	writeOldFiles(t, root,
		map[string][]portfwd.Allocation{
			"p1": p1,
			"p2": {alloc("p2", "web", 3000, 25152)},
			"p9": {alloc("p9", "web", 3000, 25153)}, // no record: skipped
		},
		map[string]netip.Prefix{
			"p1": pfx("10.214.8.0/28"),
			"p2": pfx("10.214.8.16/28"),
			"p9": pfx("10.214.8.32/28"),
		})
	// p2 already has ports in the state store: those win.
	ps := PortStore(st)
	p2 := []portfwd.Allocation{alloc("p2", "api", 8080, 25160)}
	if err := ps.Save(ctx, "p2", p2); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	if err := Migrate(ctx, st, root, WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))); err != nil {
		t.Fatal(err)
	}
	if got, want := load(t, ps), append(append([]portfwd.Allocation{}, p1...), p2...); !reflect.DeepEqual(got, want) {
		t.Fatalf("ports after Migrate = %+v, want %+v", got, want)
	}
	ss, err := SubnetStore(st, pfx("10.214.8.0/24"), 28)
	if err != nil {
		t.Fatal(err)
	}
	want := []netns.Used{{Prefix: pfx("10.214.8.0/28"), Owner: "p1"}, {Prefix: pfx("10.214.8.16/28"), Owner: "p2"}}
	if got, err := ss.List(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("subnets after Migrate = %+v, %v; want %+v", got, err, want)
	}
	for _, f := range []string{PortsFile, SubnetsFile} {
		path := filepath.Join(root, f)
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", f, err)
		}
		if _, err := os.Stat(path + lockSuffix); !os.IsNotExist(err) {
			t.Errorf("%s lock file still there: %v", f, err)
		}
		if _, err := os.Stat(path + MigratedSuffix); err != nil {
			t.Errorf("%s not renamed: %v", f, err)
		}
	}
	for _, s := range []string{"pod=p9", "port allocations of a pod with no record", "subnet of a pod with no record", "file's copy ignored"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs.String())
		}
	}

	// Once: a second run finds nothing to do and changes nothing.
	if err := Migrate(ctx, st, root); err != nil {
		t.Fatal(err)
	}
	if got := load(t, ps); len(got) != 3 {
		t.Fatalf("second Migrate changed ports: %+v", got)
	}
	// The new store takes over: p3 gets the next free subnet after the
	// imported ones, and a forwarder sees p1's ports.
	if p, err := ss.Reserve(ctx, "p3", netip.Prefix{}, nil); err != nil || p != pfx("10.214.8.32/28") {
		t.Fatalf("Reserve after Migrate = %v, %v", p, err)
	}
	f, err := portfwd.New(ctx, portfwd.WithStore(ps), portfwd.WithPortRange(25100, 25199), portfwd.WithListenAddr(netip.MustParseAddr("127.0.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(ctx)
	if got := f.Allocations("p1"); !reflect.DeepEqual(got, p1) {
		t.Fatalf("forwarder after Migrate: %+v, want %+v", got, p1)
	}
}

func TestMigrateNothing(t *testing.T) {
	st, _ := boltTemp(t)
	root := t.TempDir()
	if err := Migrate(context.Background(), st, root); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("Migrate with no files created %v", entries)
	}
	if err := Migrate(context.Background(), st, "relative"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("relative data root: %v", err)
	}
	if err := Migrate(context.Background(), nil, root); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("nil store: %v", err)
	}
}

// A file that cannot be imported whole stays where it is, so a fixed
// rerun loses nothing.
func TestMigrateFailureKeepsFiles(t *testing.T) {
	ctx := context.Background()
	st, _ := boltTemp(t)
	createPods(t, st, "p1", "p2")
	ps := PortStore(st)
	if err := ps.Save(ctx, "p2", []portfwd.Allocation{alloc("p2", "web", 3000, 25170)}); err != nil {
		t.Fatal(err)
	}
	ss, _ := SubnetStore(st, pfx("10.214.8.0/24"), 28)
	if _, err := ss.Reserve(ctx, "p2", pfx("10.214.8.0/28"), nil); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	writeOldFiles(t, root, map[string][]portfwd.Allocation{"p1": {alloc("p1", "web", 3000, 25170)}}, nil)
	err := Migrate(ctx, st, root)
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p2") {
		t.Fatalf("Migrate of a port held in the store = %v, want conflict naming pod p2", err)
	}
	if _, err := os.Stat(filepath.Join(root, PortsFile)); err != nil {
		t.Fatalf("ports.json gone after a failed import: %v", err)
	}

	root = t.TempDir()
	writeOldFiles(t, root, nil, map[string]netip.Prefix{"p1": pfx("10.214.8.0/29")})
	if err := Migrate(ctx, st, root); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p2") {
		t.Fatalf("Migrate of an overlapping subnet = %v, want conflict naming pod p2", err)
	}
	if _, err := os.Stat(filepath.Join(root, SubnetsFile)); err != nil {
		t.Fatalf("subnets.json gone after a failed import: %v", err)
	}

	root = t.TempDir()
	if err := os.WriteFile(filepath.Join(root, PortsFile), []byte(`{"version":1,"allocations":[],"extra":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, st, root); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Migrate of a corrupt ports.json = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, PortsFile)); err != nil {
		t.Fatalf("corrupt ports.json gone: %v", err)
	}
}
