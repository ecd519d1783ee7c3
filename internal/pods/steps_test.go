package pods

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// trace records what the steps did.
type trace struct {
	mu   sync.Mutex
	log  []string
	fail map[string]bool
}

func (tr *trace) add(s string) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.log = append(tr.log, s)
	if tr.fail[s] {
		return errors.New(s + " failed")
	}
	return nil
}

func traced(name, join string, partial bool, release bool) step[*trace] {
	st := step[*trace]{
		name:    name,
		join:    join,
		partial: partial,
		do:      func(_ context.Context, tr *trace) error { return tr.add("do " + name) },
		undo:    func(_ context.Context, tr *trace) error { return tr.add("undo " + name) },
	}
	if release {
		st.release = func(_ context.Context, tr *trace) error { return tr.add("release " + name) }
	}
	return st
}

func TestStepsUnwindCompletedInReverse(t *testing.T) {
	s := steps[*trace]{list: []step[*trace]{
		traced("a", "", false, false),
		traced("bg", "d", false, false), // joins before d
		traced("b", "", false, false),
		traced("c", "", true, false), // partial
		traced("d", "", false, false),
	}}
	tr := &trace{fail: map[string]bool{"do c": true}}
	err := s.up(context.Background(), tr, &timing{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "c: ") {
		t.Fatalf("err %v, want one naming c", err)
	}
	var undos []string
	for _, l := range tr.log {
		if strings.HasPrefix(l, "undo ") {
			undos = append(undos, l)
		}
	}
	// c failed but is partial; bg completed in the background; d never ran.
	if want := []string{"undo c", "undo b", "undo bg", "undo a"}; !slices.Equal(undos, want) {
		t.Fatalf("undos %v, want %v", undos, want)
	}
}

func TestStepsBackgroundFailureWinsAtItsJoin(t *testing.T) {
	s := steps[*trace]{list: []step[*trace]{
		traced("bg", "c", false, false),
		traced("b", "", false, false),
		traced("c", "", false, false),
	}}
	tr := &trace{fail: map[string]bool{"do bg": true}}
	err := s.up(context.Background(), tr, &timing{}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "bg: ") {
		t.Fatalf("err %v", err)
	}
	if slices.Contains(tr.log, "do c") || slices.Contains(tr.log, "undo bg") || !slices.Contains(tr.log, "undo b") {
		t.Fatalf("log %v: want b undone, c never run, bg (failed, not partial) not undone", tr.log)
	}
}

func TestStepsDownAndRelease(t *testing.T) {
	s := steps[*trace]{list: []step[*trace]{
		traced("a", "", false, true),
		traced("b", "", false, false),
		traced("c", "", false, true),
	}}
	tr := &trace{fail: map[string]bool{"undo b": true}}
	err := s.down(context.Background(), tr)
	if err == nil || !strings.Contains(err.Error(), "b: ") {
		t.Fatalf("down: %v", err)
	}
	if want := []string{"undo c", "undo b", "undo a"}; !slices.Equal(tr.log, want) {
		t.Fatalf("down ran %v, want %v (on past a failure)", tr.log, want)
	}
	tr = &trace{fail: map[string]bool{"release c": true}}
	if err := s.release(context.Background(), tr); err == nil || !strings.HasPrefix(err.Error(), "c: ") {
		t.Fatalf("release: %v", err)
	}
	if want := []string{"release c"}; !slices.Equal(tr.log, want) {
		t.Fatalf("release ran %v, want %v (stop at the first failure)", tr.log, want)
	}
}
