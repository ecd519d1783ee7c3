package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func binding(key string, port int) PortBinding {
	return PortBinding{Key: key, HostPort: port, Data: json.RawMessage(`{"k":"` + key + `"}`)}
}

func portSetOf(t *testing.T, s *Store, podID string) []PortBinding {
	t.Helper()
	sets, err := s.PortSets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range sets {
		if ps.PodID == podID {
			return ps.Bindings
		}
	}
	return nil
}

func TestPortSets(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	mustCreate(t, s, "p2", "api")

	a := []PortBinding{binding("web", 31000), binding("#22", 31001)}
	if err := s.ReplacePortSet(ctx, "p1", a); err != nil {
		t.Fatal(err)
	}
	if got := portSetOf(t, s, "p1"); !reflect.DeepEqual(got, a) {
		t.Fatalf("p1 set = %+v, want %+v (in saved order)", got, a)
	}
	// Another pod cannot take a held port; the error names the holder and
	// nothing changes.
	err := s.ReplacePortSet(ctx, "p2", []PortBinding{binding("x", 31002), binding("y", 31001)})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p1 (port #22)") {
		t.Fatalf("taking p1's port = %v, want conflict naming pod p1 (port #22)", err)
	}
	if got := portSetOf(t, s, "p2"); got != nil {
		t.Fatalf("failed replace left %+v", got)
	}
	if err := s.ReplacePortSet(ctx, "p2", []PortBinding{binding("ssh", 31003)}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplacePortSet(ctx, "p1", []PortBinding{binding("web", 31003)}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p2 (port ssh)") {
		t.Fatalf("taking p2's port = %v", err)
	}
	// Replacing the set is atomic: 31001 is freed, web keeps 31000, and
	// a key may move to another port.
	b := []PortBinding{binding("web", 31000), binding("ide", 31004)}
	if err := s.ReplacePortSet(ctx, "p1", b); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplacePortSet(ctx, "p2", []PortBinding{binding("y", 31001), binding("ssh", 31003)}); err != nil {
		t.Fatalf("freed port not reusable: %v", err)
	}
	want := map[int]string{31000: "p1/web", 31001: "p2/y", 31003: "p2/ssh", 31004: "p1/ide"}
	if got := portOwners(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("host-port index = %v, want %v", got, want)
	}

	// Invalid sets change nothing.
	for name, bad := range map[string][]PortBinding{
		"no key":       {{HostPort: 31010}},
		"dup key":      {binding("a", 31010), binding("a", 31011)},
		"dup port":     {binding("a", 31010), binding("b", 31010)},
		"port 0":       {binding("a", 0)},
		"port 70000":   {binding("a", 70000)},
		"invalid json": {{Key: "a", HostPort: 31010, Data: json.RawMessage(`{`)}},
	} {
		if err := s.ReplacePortSet(ctx, "p1", bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want invalid argument", name, err)
		}
	}
	if err := s.ReplacePortSet(ctx, "nope", a); !errdefs.IsNotFound(err) {
		t.Fatalf("set for a missing pod = %v, want not found", err)
	}
	if got := portSetOf(t, s, "p1"); !reflect.DeepEqual(got, b) {
		t.Fatalf("p1 set after bad replaces = %+v", got)
	}

	// DeletePod frees the set's ports; DeletePortSet and an empty replace
	// free a set; deleting none succeeds.
	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if got := portSetOf(t, s, "p1"); got != nil {
		t.Fatalf("deleted pod's set = %+v", got)
	}
	if err := s.ReplacePortSet(ctx, "p2", []PortBinding{binding("y", 31001), binding("w", 31000), binding("i", 31004)}); err != nil {
		t.Fatalf("deleted pod's ports not free: %v", err)
	}
	if err := s.ReplacePortSet(ctx, "p2", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePortSet(ctx, "p2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePortSet(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if got := portOwners(t, s); len(got) != 0 || portSetOf(t, s, "p2") != nil {
		t.Fatalf("after deletes the host-port index holds %v", got)
	}
}

// portOwners reads the host-port index: host port -> "pod/key".
func portOwners(t *testing.T, s *Store) map[int]string {
	t.Helper()
	out := map[int]string{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPortOwners).ForEach(func(k, v []byte) error {
			out[int(binary.BigEndian.Uint16(k))] = string(v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAllocateSubnetWith(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "a")
	mustCreate(t, s, "p2", "b")
	p1 := mustPrefix(t, "10.98.0.0/24")
	if _, err := s.AllocateSubnetWith(ctx, "p1", func([]SubnetAllocation) (netip.Prefix, error) { return p1, nil }); err != nil {
		t.Fatal(err)
	}
	var seen []SubnetAllocation
	_, err := s.AllocateSubnetWith(ctx, "p2", func(used []SubnetAllocation) (netip.Prefix, error) {
		seen = used
		return mustPrefix(t, "10.98.0.128/25"), nil
	})
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "pod p1") {
		t.Fatalf("overlap = %v, want conflict naming pod p1", err)
	}
	if !reflect.DeepEqual(seen, []SubnetAllocation{{"p1", p1}}) {
		t.Fatalf("picker saw %+v", seen)
	}
	called := false
	got, err := s.AllocateSubnetWith(ctx, "p1", func([]SubnetAllocation) (netip.Prefix, error) { called = true; return netip.Prefix{}, nil })
	if err != nil || got != p1 || called {
		t.Fatalf("existing subnet = %v, %v (picker called: %v)", got, err, called)
	}
}

func TestMigrateSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "p1", "web")
	if _, err := s.AllocateSubnetWith(ctx, "p1", pick(t, "10.96.0.0/28")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Make it what a schema 1 binary wrote: no port-sets bucket.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketPortSets); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, u64(1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = openAt(t, path)
	if err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); string(v) != string(u64(2)) {
			t.Errorf("schema after migration %x, want 2", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.GetPod(ctx, "p1"); err != nil || p.Name != "web" {
		t.Fatalf("pod after migration: %+v, %v", p, err)
	}
	if err := s.ReplacePortSet(ctx, "p1", []PortBinding{binding("web", 31501)}); err != nil {
		t.Fatalf("port sets after migration: %v", err)
	}
	if got := portOwners(t, s); !reflect.DeepEqual(got, map[int]string{31501: "p1/web"}) {
		t.Fatalf("host-port index after migration: %v", got)
	}
	if list, _ := s.ListSubnets(ctx); len(list) != 1 || list[0].PodID != "p1" {
		t.Fatalf("subnets after migration: %+v", list)
	}
}
