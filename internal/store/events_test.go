package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func appendN(t testing.TB, s *Store, podID string, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.AppendEvent(context.Background(), Event{PodID: podID, Type: "test", Message: fmt.Sprint(i)}); err != nil {
			t.Fatalf("AppendEvent: %v", err)
		}
	}
}

// checkContiguous fails unless evs have Seq first, first+1, ... .
func checkContiguous(t testing.TB, evs []Event, first uint64) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != first+uint64(i) {
			t.Fatalf("event %d has seq %d, want %d (gap or duplicate)", i, ev.Seq, first+uint64(i))
		}
	}
}

func TestAppendEventValidation(t *testing.T) {
	s := openTemp(t)
	for _, typ := range []string{"", EventState, EventDeleted} {
		if _, err := s.AppendEvent(context.Background(), Event{Type: typ}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("AppendEvent(type %q) = %v, want invalid argument", typ, err)
		}
	}
}

func TestEventsBoundedAndMonotonicAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(ctx, path, WithEventLimit(50))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "", 120)
	evs, err := s.Events(ctx, 0, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 50 {
		t.Fatalf("kept %d events, want 50", len(evs))
	}
	checkContiguous(t, evs, 71)
	s.Close()

	s = openAt(t, path, WithEventLimit(50))
	ev, err := s.AppendEvent(ctx, Event{Type: "test"})
	if err != nil || ev.Seq != 121 || ev.Time.IsZero() {
		t.Fatalf("first event after reopen = %+v, %v; want seq 121", ev, err)
	}
	evs, _ = s.Events(ctx, 0, "", 0)
	if len(evs) != 50 {
		t.Fatalf("kept %d events after reopen, want 50", len(evs))
	}
	checkContiguous(t, evs, 72)

	// A smaller limit on reopen prunes down on the next append.
	s.Close()
	s = openAt(t, path, WithEventLimit(5))
	appendN(t, s, "", 1)
	evs, _ = s.Events(ctx, 0, "", 0)
	if len(evs) != 5 {
		t.Fatalf("kept %d events after lowering the limit, want 5", len(evs))
	}
	checkContiguous(t, evs, 118)

	// since, pod filter and limit.
	appendN(t, s, "p1", 2)
	evs, _ = s.Events(ctx, 120, "", 2) // kept: 120..124
	if len(evs) != 2 || evs[0].Seq != 121 || evs[1].Seq != 122 {
		t.Fatalf("Events(since 120, limit 2) = %+v", evs)
	}
	evs, _ = s.Events(ctx, 0, "p1", 0)
	if len(evs) != 2 || evs[0].PodID != "p1" || evs[1].Seq != 124 {
		t.Fatalf("Events(pod p1) = %+v", evs)
	}
}

// collect reads from w until it has n events or the deadline passes.
func collect(t *testing.T, w *Subscription, n int, timeout time.Duration) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case ev, ok := <-w.C:
			if !ok {
				t.Fatalf("watch closed after %d of %d events: %v", len(out), n, w.Err())
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("got %d of %d events before the deadline", len(out), n)
		}
	}
	return out
}

// expectQuiet checks that nothing more arrives promptly: a duplicate
// would show up here. It cannot prove absence, only catch what is there.
func expectQuiet(t *testing.T, w *Subscription) {
	t.Helper()
	select {
	case ev, ok := <-w.C:
		if ok {
			t.Fatalf("unexpected extra event %+v", ev)
		}
	case <-time.After(50 * time.Millisecond):
	}
}

func TestWatchHistoryThenLiveUnderConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for i := range 4 {
		mustCreate(t, s, fmt.Sprintf("p%d", i), fmt.Sprintf("n%d", i))
	}
	appendN(t, s, "p0", 50) // history: 4 creates + 50

	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range writers {
		wg.Go(func() {
			<-start
			pod := fmt.Sprintf("p%d", g%4)
			for i := range perWriter {
				if _, err := s.AppendEvent(ctx, Event{PodID: pod, Type: "test", Message: fmt.Sprint(g, i)}); err != nil {
					t.Errorf("AppendEvent: %v", err)
					return
				}
			}
		})
	}
	close(start) // writers race with the Watch calls below on purpose

	all, err := s.Watch(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	one, err := s.Watch(ctx, 0, "p1")
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	mid, err := s.Watch(ctx, 30, "")
	if err != nil {
		t.Fatal(err)
	}
	defer mid.Close()
	wg.Wait()

	total := 4 + 50 + writers*perWriter
	evs := collect(t, all, total, 30*time.Second)
	checkContiguous(t, evs, 1)
	expectQuiet(t, all)

	evs = collect(t, mid, total-30, 30*time.Second)
	checkContiguous(t, evs, 31)
	expectQuiet(t, mid)

	// p1: its create event plus the writers with g%4 == 1.
	wantP1 := 1 + (writers/4)*perWriter
	evs = collect(t, one, wantP1, 30*time.Second)
	last := uint64(0)
	for _, ev := range evs {
		if ev.PodID != "p1" || ev.Seq <= last {
			t.Fatalf("pod watch delivered %+v after seq %d", ev, last)
		}
		last = ev.Seq
	}
	expectQuiet(t, one)

	// Live events after history still arrive.
	appendN(t, s, "p1", 1)
	if ev := collect(t, one, 1, 10*time.Second)[0]; ev.Seq != uint64(total+1) {
		t.Fatalf("live event seq %d, want %d", ev.Seq, total+1)
	}
}

func TestSlowWatcherDoesNotBlockWritersAndMissesNothing(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	mustCreate(t, s, "p1", "web")
	w, err := s.Watch(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Far more events than the channel holds, and nobody reading: if
	// writers waited for the watcher this would never finish.
	const n = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range n / 4 {
					if _, err := s.AppendEvent(ctx, Event{PodID: "p1", Type: "test", Message: fmt.Sprint(g, i)}); err != nil {
						t.Errorf("AppendEvent: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("writers blocked by an unread watcher")
	}
	evs := collect(t, w, n+1, 30*time.Second)
	checkContiguous(t, evs, 1)
	expectQuiet(t, w)
}

func TestWatcherFallingBehindPrunedLogIsClosed(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, WithEventLimit(10))
	w, err := s.Watch(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	appendN(t, s, "", 300) // far past channel buffer + limit, unread

	var got []Event
	deadline := time.After(30 * time.Second)
	for open := true; open; {
		select {
		case ev, ok := <-w.C:
			if ok {
				got = append(got, ev)
			}
			open = ok
		case <-deadline:
			t.Fatalf("watch not closed; got %d events", len(got))
		}
	}
	if !errors.Is(w.Err(), ErrEventsPruned) || !errdefs.IsNotFound(w.Err()) {
		t.Fatalf("Err = %v, want ErrEventsPruned", w.Err())
	}
	// What it did deliver is gap-free from the start.
	checkContiguous(t, got, 1)
	if len(got) >= 300 {
		t.Fatalf("delivered all %d events despite pruning", len(got))
	}

	// Asking for history that is gone fails up front.
	if _, err := s.Watch(ctx, 5, ""); !errors.Is(err, ErrEventsPruned) {
		t.Fatalf("Watch(since 5) on a pruned log = %v", err)
	}
	// Asking from the oldest kept event is fine.
	w2, err := s.Watch(ctx, 290, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	checkContiguous(t, collect(t, w2, 10, 10*time.Second), 291)
}

func TestWatchEnds(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	w1, err := s.Watch(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Watch(context.Background(), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	w3, err := s.Watch(context.Background(), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	w3.Close()
	waitClosed(t, w1)
	waitClosed(t, w3)
	if !errors.Is(w1.Err(), context.Canceled) || !errors.Is(w3.Err(), context.Canceled) {
		t.Fatalf("Err after cancel/Close = %v, %v", w1.Err(), w3.Err())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, w2)
	if !errors.Is(w2.Err(), ErrClosed) || !errors.Is(w2.Err(), errdefs.ErrUnavailable) {
		t.Fatalf("Err after store Close = %v", w2.Err())
	}
	if _, err := s.Watch(context.Background(), 0, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch on closed store = %v", err)
	}
}

func waitClosed(t *testing.T, w *Subscription) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-w.C:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch not closed")
		}
	}
}
