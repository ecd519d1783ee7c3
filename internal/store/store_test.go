package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/lifecycle"
)

func openAt(t testing.TB, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTemp(t testing.TB, opts ...Option) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), FileName), opts...)
}

func mustCreate(t testing.TB, s *Store, id, name string) *Pod {
	t.Helper()
	p, err := s.CreatePod(context.Background(), Pod{ID: id, Name: name, Spec: json.RawMessage(`{"image":"busybox"}`)})
	if err != nil {
		t.Fatalf("CreatePod(%s): %v", id, err)
	}
	return p
}

func mustTransition(t testing.TB, s *Store, id string, to ...lifecycle.State) *Pod {
	t.Helper()
	var p *Pod
	for _, st := range to {
		var err error
		if p, err = s.Transition(context.Background(), id, st, "test"); err != nil {
			t.Fatalf("Transition(%s, %s): %v", id, st, err)
		}
	}
	return p
}

func TestOptionsValidate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	for name, opt := range map[string]Option{
		"lock timeout 0": WithLockTimeout(0),
		"event limit 0":  WithEventLimit(0),
		"nil logger":     WithLogger(nil),
		"nil clock":      WithClock(nil),
	} {
		if _, err := Open(ctx, path, opt); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: Open = %v, want invalid argument", name, err)
		}
	}
	if _, err := Open(ctx, ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Open(\"\") = %v", err)
	}
}

func TestPodCRUD(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	p := mustCreate(t, s, "p1", "web")
	if p.State != lifecycle.Pending || p.Generation != 1 || p.CreatedAt.IsZero() || !p.UpdatedAt.Equal(p.CreatedAt) {
		t.Fatalf("created pod %+v", p)
	}
	mustCreate(t, s, "p2", "api")

	got, err := s.GetPod(ctx, "p1")
	if err != nil || got.Name != "web" || string(got.Spec) != `{"image":"busybox"}` {
		t.Fatalf("GetPod = %+v, %v", got, err)
	}
	if byName, err := s.GetPodByName(ctx, "api"); err != nil || byName.ID != "p2" {
		t.Fatalf("GetPodByName(api) = %+v, %v", byName, err)
	}

	up, err := s.UpdatePod(ctx, "p1", func(p *Pod) error {
		p.Status = json.RawMessage(`{"ip":"10.0.0.2"}`)
		return nil
	})
	if err != nil || up.Generation != 2 || string(up.Status) != `{"ip":"10.0.0.2"}` || up.UpdatedAt.Before(up.CreatedAt) {
		t.Fatalf("UpdatePod = %+v, %v", up, err)
	}
	if got, _ := s.GetPod(ctx, "p1"); got.Generation != 2 || string(got.Status) != `{"ip":"10.0.0.2"}` {
		t.Fatalf("after update GetPod = %+v", got)
	}

	pods, err := s.ListPods(ctx)
	if err != nil || len(pods) != 2 || pods[0].ID != "p1" || pods[1].ID != "p2" {
		t.Fatalf("ListPods = %+v, %v", pods, err)
	}

	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPod(ctx, "p1"); !errdefs.IsNotFound(err) {
		t.Fatalf("GetPod after delete = %v", err)
	}
	if _, err := s.GetPodByName(ctx, "web"); !errdefs.IsNotFound(err) {
		t.Fatalf("GetPodByName after delete = %v", err)
	}
	if err := s.DeletePod(ctx, "p1"); err != nil {
		t.Fatalf("second DeletePod = %v, want nil (idempotent)", err)
	}
	// The name is free again.
	mustCreate(t, s, "p3", "web")
}

func TestListPodsOrderedByCreation(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tick := 0
	s := openTemp(t, WithClock(func() time.Time { tick++; return base.Add(time.Duration(tick) * time.Second) }))
	ids := []string{"zz", "aa", "mm", "bb"} // creation order differs from key order
	for _, id := range ids {
		mustCreate(t, s, id, "n-"+id)
	}
	pods, err := s.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pods {
		if p.ID != ids[i] {
			t.Fatalf("ListPods order %v, want %v", podIDs(pods), ids)
		}
	}
}

func podIDs(pods []Pod) []string {
	var ids []string
	for _, p := range pods {
		ids = append(ids, p.ID)
	}
	return ids
}

func TestCreatePodValidation(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	for name, tc := range map[string]struct {
		p    Pod
		want error
	}{
		"duplicate id":   {Pod{ID: "p1", Name: "other"}, errdefs.ErrAlreadyExists},
		"duplicate name": {Pod{ID: "p2", Name: "web"}, errdefs.ErrAlreadyExists},
		"bad id":         {Pod{ID: "../x", Name: "x"}, errdefs.ErrInvalidArgument},
		"empty name":     {Pod{ID: "p3"}, errdefs.ErrInvalidArgument},
		"not pending":    {Pod{ID: "p4", Name: "y", State: lifecycle.Running}, errdefs.ErrInvalidArgument},
		"bad spec json":  {Pod{ID: "p5", Name: "z", Spec: json.RawMessage(`{`)}, errdefs.ErrInvalidArgument},
	} {
		if _, err := s.CreatePod(ctx, tc.p); !errors.Is(err, tc.want) {
			t.Errorf("%s: CreatePod = %v, want %v", name, err, tc.want)
		}
	}
	pods, _ := s.ListPods(ctx)
	if len(pods) != 1 {
		t.Fatalf("failed creates left pods behind: %v", podIDs(pods))
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	checks := map[string]error{}
	_, checks["GetPod"] = s.GetPod(ctx, "nope")
	_, checks["GetPodByName"] = s.GetPodByName(ctx, "nope")
	_, checks["UpdatePod"] = s.UpdatePod(ctx, "nope", func(*Pod) error { return nil })
	_, checks["Transition"] = s.Transition(ctx, "nope", lifecycle.Provisioning, "")
	_, _, checks["ApplyOp"] = s.ApplyOp(ctx, "nope", lifecycle.OpStop, "")
	checks["ReplacePortSet"] = s.ReplacePortSet(ctx, "nope", []PortBinding{{Key: "http", HostPort: 30000}})
	_, checks["AllocateSubnetWith"] = s.AllocateSubnetWith(ctx, "nope", pick(t, "10.99.0.0/24"))
	for name, err := range checks {
		if !errdefs.IsNotFound(err) {
			t.Errorf("%s = %v, want not found", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s error %q does not name the pod", name, err)
		}
	}
}

func TestUpdatePodGuards(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	boom := errors.New("boom")
	if _, err := s.UpdatePod(ctx, "p1", func(p *Pod) error { p.Status = json.RawMessage(`{"x":1}`); return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdatePod with failing fn = %v", err)
	}
	for name, fn := range map[string]func(*Pod){
		"id":        func(p *Pod) { p.ID = "p2" },
		"name":      func(p *Pod) { p.Name = "other" },
		"state":     func(p *Pod) { p.State = lifecycle.Running },
		"createdAt": func(p *Pod) { p.CreatedAt = p.CreatedAt.Add(time.Hour) },
		"status":    func(p *Pod) { p.Status = json.RawMessage(`nope`) },
	} {
		if _, err := s.UpdatePod(ctx, "p1", func(p *Pod) error { fn(p); return nil }); !errdefs.IsInvalidArgument(err) {
			t.Errorf("UpdatePod changing %s = %v, want invalid argument", name, err)
		}
	}
	p, _ := s.GetPod(ctx, "p1")
	if p.Generation != 1 || p.Status != nil || p.State != lifecycle.Pending {
		t.Fatalf("refused updates changed the pod: %+v", p)
	}
}

func TestTransitionAppendsEventAtomically(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	p := mustTransition(t, s, "p1", lifecycle.Provisioning, lifecycle.Running)
	if p.State != lifecycle.Running || p.Generation != 3 {
		t.Fatalf("after transitions: %+v", p)
	}
	evs, err := s.Events(ctx, 0, "p1", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ from, to lifecycle.State }{{"", lifecycle.Pending}, {lifecycle.Pending, lifecycle.Provisioning}, {lifecycle.Provisioning, lifecycle.Running}}
	if len(evs) != len(want) {
		t.Fatalf("events %+v", evs)
	}
	for i, w := range want {
		if evs[i].Type != EventState || evs[i].From != w.from || evs[i].To != w.to || evs[i].PodID != "p1" || evs[i].Seq != uint64(i+1) {
			t.Fatalf("event %d = %+v, want %v", i, evs[i], w)
		}
	}

	// An invalid move changes nothing: no record change, no event.
	_, err = s.Transition(ctx, "p1", lifecycle.Waking, "")
	var te *lifecycle.TransitionError
	if !errdefs.IsConflict(err) || !errors.As(err, &te) || te.From != lifecycle.Running || te.To != lifecycle.Waking {
		t.Fatalf("invalid transition = %v", err)
	}
	// failed needs a reason.
	if _, err := s.Transition(ctx, "p1", lifecycle.Failed, ""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("failed without reason = %v", err)
	}
	// A failing fn aborts the move.
	boom := errors.New("boom")
	if _, err := s.TransitionWith(ctx, "p1", lifecycle.Stopping, "", func(p *Pod) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("TransitionWith failing fn = %v", err)
	}
	if got, _ := s.GetPod(ctx, "p1"); got.Generation != 3 || got.State != lifecycle.Running {
		t.Fatalf("refused transitions changed the pod: %+v", got)
	}
	if last, _ := s.LastSeq(ctx); last != 3 {
		t.Fatalf("refused transitions appended events: last seq %d", last)
	}

	// TransitionWith records status with the move.
	p, err = s.TransitionWith(ctx, "p1", lifecycle.Failed, "sandbox died", func(p *Pod) error {
		p.Status = json.RawMessage(`{"exit":137}`)
		return nil
	})
	if err != nil || p.State != lifecycle.Failed || p.Reason != "sandbox died" || string(p.Status) != `{"exit":137}` || p.Generation != 4 {
		t.Fatalf("TransitionWith = %+v, %v", p, err)
	}
	if !p.StateChangedAt.Equal(p.UpdatedAt) {
		t.Fatalf("StateChangedAt %v != UpdatedAt %v", p.StateChangedAt, p.UpdatedAt)
	}
	evs, _ = s.Events(ctx, 3, "", 0)
	if len(evs) != 1 || evs[0].To != lifecycle.Failed || evs[0].Reason != "sandbox died" {
		t.Fatalf("failed event %+v", evs)
	}
}

func TestApplyOp(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	mustTransition(t, s, "p1", lifecycle.Provisioning, lifecycle.Running)

	d, p, err := s.ApplyOp(ctx, "p1", lifecycle.OpStop, "user")
	if err != nil || d.Action != lifecycle.Proceed || d.Enter != lifecycle.Stopping || p.State != lifecycle.Stopping || p.InFlight() != lifecycle.OpStop {
		t.Fatalf("stop on running = %+v %+v %v", d, p, err)
	}
	d, p, err = s.ApplyOp(ctx, "p1", lifecycle.OpStop, "user")
	if err != nil || d.Action != lifecycle.Await || p.State != lifecycle.Stopping {
		t.Fatalf("stop on stopping = %+v %+v %v", d, p, err)
	}
	_, _, err = s.ApplyOp(ctx, "p1", lifecycle.OpHibernate, "user")
	var ce *lifecycle.ConflictError
	if !errors.As(err, &ce) || !errdefs.IsConflict(err) || err.Error() != "cannot hibernate pod p1: pod is stopping" {
		t.Fatalf("hibernate on stopping = %v", err)
	}
	mustTransition(t, s, "p1", lifecycle.Stopped)
	d, p, err = s.ApplyOp(ctx, "p1", lifecycle.OpStop, "user")
	if err != nil || d.Action != lifecycle.NoOp || p.State != lifecycle.Stopped || p.Generation != 5 {
		t.Fatalf("stop on stopped = %+v %+v %v", d, p, err)
	}
	if last, _ := s.LastSeq(ctx); last != 5 {
		t.Fatalf("no-op and await appended events: last seq %d", last)
	}
}

func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "p1", "web")
	s.Close()

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySchema); string(v) != string(u64(SchemaVersion)) {
			t.Errorf("schema on disk %x, want %d", v, SchemaVersion)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, u64(SchemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(ctx, path)
	if !errors.Is(err, ErrNewerSchema) || !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "upgrade pinacle-node") {
		t.Fatalf("Open newer schema = %v", err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	openAt(t, path)
	_, err := Open(context.Background(), path, WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "database locked by another process") {
		t.Fatalf("second Open = %v, want unavailable: database locked by another process", err)
	}
	// A context deadline shorter than the lock timeout wins, and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open under short deadline = %v", err)
	}
}

func TestReopenPersistsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "p1", "web")
	mustTransition(t, s, "p1", lifecycle.Provisioning, lifecycle.Running)
	if _, err := s.UpdatePod(ctx, "p1", func(p *Pod) error { p.Status = json.RawMessage(`{"ip":"10.0.0.2"}`); return nil }); err != nil {
		t.Fatal(err)
	}
	ports := []PortBinding{{Key: "http", HostPort: 30123}}
	if err := s.ReplacePortSet(ctx, "p1", ports); err != nil {
		t.Fatal(err)
	}
	subnet, err := s.AllocateSubnetWith(ctx, "p1", pick(t, "10.99.0.0/28"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, Event{PodID: "p1", Type: "oom", Message: "killed"}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.GetPod(ctx, "p1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPod(ctx, "p1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetPod after Close = %v, want ErrClosed", err)
	}

	s = openAt(t, path)
	after, err := s.GetPod(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != before.Generation || after.State != lifecycle.Running || string(after.Status) != `{"ip":"10.0.0.2"}` ||
		!after.CreatedAt.Equal(before.CreatedAt) || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("after reopen %+v, before %+v", after, before)
	}
	if got := portSetOf(t, s, "p1"); !reflect.DeepEqual(got, ports) {
		t.Fatalf("port set after reopen %+v, want %+v", got, ports)
	}
	if sn, _ := s.AllocateSubnetWith(ctx, "p1", pick(t, "10.99.1.0/28")); sn != subnet {
		t.Fatalf("subnet after reopen %v, want %v", sn, subnet)
	}
	evs, _ := s.Events(ctx, 0, "", 0)
	if len(evs) != 4 || evs[3].Type != "oom" || evs[3].Message != "killed" {
		t.Fatalf("events after reopen %+v", evs)
	}
	if _, err := s.CreatePod(ctx, Pod{ID: "p2", Name: "web"}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("name index lost on reopen: %v", err)
	}
}
