package pods

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// step is one undoable part of bringing a pod (or a one-off run) up. A
// sequence of steps is data: up runs the do of each in order, down runs
// the undo of each in reverse, release then frees what the steps keep
// across a stop. Each is a named crash point after it ran (up:NAME,
// down:NAME, del:NAME). Adding a part to a pod is adding a step.
type step[U any] struct {
	name string
	// do brings the part up. nil: the step only undoes or releases.
	do func(ctx context.Context, u U) error
	// undo takes the part down (stop, a failed start, crash recovery).
	// It must work from the pod's record alone, as after a crash, and
	// treat what is already gone as success.
	undo func(ctx context.Context, u U) error
	// release frees, on delete, what the part keeps while the pod is
	// stopped (allocations, files, leases). Idempotent as undo.
	release func(ctx context.Context, u U) error
	// join, when set, runs do in the background, concurrently with the
	// steps after it, until the step named join, which waits for it
	// first. Its crash point is there, too.
	join string
	// partial: a failed do can leave part of the step behind, so its
	// undo runs when it fails, too.
	partial bool
}

// steps is a sequence of steps and what to do between them.
type steps[U any] struct {
	list []step[U]
	// crash enables the crash points (the daemon's pods; not one-off runs).
	crash bool
	// verb names the crash points of up: VERB:STEP ("up" when empty).
	// Sequences other than the bring-up (hibernate, wake) set their own.
	verb string
}

// upPoint is the crash point after step name's do.
func (s steps[U]) upPoint(name string) string {
	if s.verb == "" {
		return "up:" + name
	}
	return s.verb + ":" + name
}

func (s steps[U]) crashpoint(name string) {
	if s.crash {
		crashpoint(name)
	}
}

// timing records when each step finished, for the "pod up" log line.
type timing struct {
	t0 time.Time
	kv []any
}

func (t *timing) mark(name string) {
	t.kv = append(t.kv, name, time.Since(t.t0).Round(time.Microsecond).String())
}

// unwindTimeout bounds the undo of a failed bring-up, which runs on a
// context that outlives the failed operation's.
const unwindTimeout = 2 * time.Minute

// up runs every step's do in order. On failure it waits for the steps
// still running in the background, then runs, in reverse order, the undo
// of each step that completed (and of a partial one that failed), and
// returns the error prefixed with the failed step's name. undone reports
// each undo's error; the unwinding carries on past it.
func (s steps[U]) up(ctx context.Context, u U, t *timing, undone func(name string, err error)) (retErr error) {
	if t.t0.IsZero() {
		t.t0 = time.Now()
	}
	type running struct {
		i    int
		errc chan error
	}
	var bg []running
	ran := make([]bool, len(s.list)) // whose undo a failure runs
	// join waits for the background steps that join before step name
	// ("" for all), in order; the first failure wins.
	join := func(name string) error {
		var first error
		keep := bg[:0]
		for _, r := range bg {
			st := &s.list[r.i]
			if name != "" && st.join != name {
				keep = append(keep, r)
				continue
			}
			err := <-r.errc
			ran[r.i] = err == nil || st.partial
			if err == nil {
				t.mark(st.name)
				s.crashpoint(s.upPoint(st.name))
			} else if first == nil {
				first = fmt.Errorf("%s: %w", st.name, err)
			}
		}
		bg = keep
		return first
	}
	defer func() {
		// Never unwind behind a step still running.
		if err := join(""); err != nil && retErr == nil {
			retErr = err
		}
		if retErr != nil {
			s.unwind(ctx, u, ran, undone)
		}
	}()
	for i := range s.list {
		st := &s.list[i]
		if err := join(st.name); err != nil {
			return err
		}
		if st.do == nil {
			continue
		}
		if st.join != "" {
			errc := make(chan error, 1)
			go func() { errc <- st.do(ctx, u) }()
			bg = append(bg, running{i, errc})
			continue
		}
		if err := st.do(ctx, u); err != nil {
			ran[i] = st.partial
			return fmt.Errorf("%s: %w", st.name, err)
		}
		ran[i] = true
		t.mark(st.name)
		s.crashpoint(s.upPoint(st.name))
	}
	return nil
}

// unwind runs, in reverse, the undo of each step marked in ran.
func (s steps[U]) unwind(ctx context.Context, u U, ran []bool, undone func(string, error)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unwindTimeout)
	defer cancel()
	for i := len(s.list) - 1; i >= 0; i-- {
		if st := &s.list[i]; ran[i] && st.undo != nil {
			if err := st.undo(ctx, u); err != nil && undone != nil {
				undone(st.name, err)
			}
		}
	}
}

// down runs every step's undo in reverse order. An undo's failure does
// not stop the others: all errors are returned, each naming its step.
func (s steps[U]) down(ctx context.Context, u U) error {
	var errs []error
	for i := len(s.list) - 1; i >= 0; i-- {
		st := &s.list[i]
		if st.undo == nil {
			continue
		}
		if err := st.undo(ctx, u); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.name, err))
		}
		s.crashpoint("down:" + st.name)
	}
	return errors.Join(errs...)
}

// release runs every step's release in reverse order and stops at the
// first failure: what comes later (the pod's directory, its record) must
// outlive what an earlier release could not free.
func (s steps[U]) release(ctx context.Context, u U) error {
	for i := len(s.list) - 1; i >= 0; i-- {
		st := &s.list[i]
		if st.release == nil {
			continue
		}
		if err := st.release(ctx, u); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		s.crashpoint("del:" + st.name)
	}
	return nil
}

// upPoints lists the crash points of up, in order.
func (s steps[U]) upPoints() []string {
	var out []string
	for _, st := range s.list {
		if st.do != nil {
			out = append(out, s.upPoint(st.name))
		}
	}
	return out
}

// crashPoints lists the crash points of each operation the steps drive:
// create passes every do, stop every undo, delete one undo (the rest are
// stop's) and then every release.
func (s steps[U]) crashPoints() map[string][]string {
	cp := map[string][]string{"create": {"up:recorded"}}
	for _, st := range s.list {
		if st.do != nil {
			cp["create"] = append(cp["create"], "up:"+st.name)
		}
	}
	for i := len(s.list) - 1; i >= 0; i-- {
		st := s.list[i]
		if st.undo != nil {
			cp["stop"] = append(cp["stop"], "down:"+st.name)
		}
	}
	cp["delete"] = append(cp["delete"], "down:sandbox", "del:down")
	for i := len(s.list) - 1; i >= 0; i-- {
		if st := s.list[i]; st.release != nil {
			cp["delete"] = append(cp["delete"], "del:"+st.name)
		}
	}
	return cp
}
