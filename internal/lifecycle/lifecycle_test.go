package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// wantNext is written out by hand, independently of the transitions table,
// so a change to the state machine has to be made twice on purpose.
var wantNext = map[State][]State{
	Pending:      {Provisioning, Failed, Terminating},
	Provisioning: {Running, Failed, Terminating},
	Running:      {Stopping, Hibernating, Failed, Terminating},
	Stopping:     {Stopped, Failed, Terminating},
	Stopped:      {Starting, Failed, Terminating},
	Starting:     {Running, Failed, Terminating},
	Hibernating:  {Running, Hibernated, Failed, Terminating},
	Hibernated:   {Stopping, Waking, Failed, Terminating},
	Waking:       {Running, Failed, Terminating},
	Failed:       {Starting, Terminating},
	Terminating:  {Failed, Terminated},
	Terminated:   {},
}

func TestEveryTransitionPair(t *testing.T) {
	for _, from := range States {
		want := map[State]bool{}
		for _, to := range wantNext[from] {
			if to != from {
				want[to] = true
			}
		}
		for _, to := range States {
			t.Run(fmt.Sprintf("%s->%s", from, to), func(t *testing.T) {
				got := CanTransition(from, to)
				if got != want[to] {
					t.Fatalf("CanTransition(%s, %s) = %v, want %v", from, to, got, want[to])
				}
				err := CheckTransition(from, to)
				if got {
					if err != nil {
						t.Fatalf("CheckTransition = %v, want nil", err)
					}
					return
				}
				var te *TransitionError
				if !errors.As(err, &te) || te.From != from || te.To != to {
					t.Fatalf("CheckTransition = %v, want *TransitionError{%s,%s}", err, from, to)
				}
				if !errdefs.IsConflict(err) {
					t.Fatalf("CheckTransition error %v does not wrap ErrConflict", err)
				}
				if !strings.Contains(err.Error(), string(from)) || !strings.Contains(err.Error(), string(to)) {
					t.Fatalf("error %q does not name both states", err)
				}
			})
		}
	}
}

func TestNextMatchesCanTransition(t *testing.T) {
	for _, from := range States {
		n := 0
		for _, to := range Next(from) {
			if !CanTransition(from, to) {
				t.Errorf("Next(%s) has %s, which CanTransition rejects", from, to)
			}
			n++
		}
		for _, to := range States {
			if CanTransition(from, to) {
				n--
			}
		}
		if n != 0 {
			t.Errorf("Next(%s) = %v disagrees with CanTransition", from, Next(from))
		}
	}
}

func TestUnknownStates(t *testing.T) {
	if CanTransition("bogus", Running) || CanTransition(Running, "bogus") {
		t.Fatal("transition with an unknown state allowed")
	}
	if err := CheckTransition(Running, "bogus"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("CheckTransition to unknown = %v, want invalid argument", err)
	}
	if _, err := ParseState("bogus"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ParseState(bogus) = %v", err)
	}
	for _, s := range States {
		if got, err := ParseState(string(s)); err != nil || got != s {
			t.Fatalf("ParseState(%s) = %v, %v", s, got, err)
		}
	}
}

func TestClasses(t *testing.T) {
	transitional := map[State]struct {
		op     Op
		target State
	}{
		Provisioning: {OpCreate, Running},
		Stopping:     {OpStop, Stopped},
		Starting:     {OpStart, Running},
		Hibernating:  {OpHibernate, Hibernated},
		Waking:       {OpWake, Running},
		Terminating:  {OpDelete, Terminated},
	}
	for _, s := range States {
		tr, isTr := transitional[s]
		switch {
		case isTr:
			if !s.IsTransitional() || s.IsStable() || s.IsTerminal() || s.Class() != Transitional {
				t.Errorf("%s: class %v, want transitional", s, s.Class())
			}
			if s.InFlight() != tr.op || s.Target() != tr.target {
				t.Errorf("%s: InFlight %q Target %q, want %q %q", s, s.InFlight(), s.Target(), tr.op, tr.target)
			}
			if !CanTransition(s, s.Target()) {
				t.Errorf("%s cannot reach its own target %s", s, s.Target())
			}
		case s == Terminated:
			if !s.IsTerminal() || s.IsStable() || s.IsTransitional() {
				t.Errorf("%s: class %v, want terminal", s, s.Class())
			}
		default:
			if !s.IsStable() || s.IsTransitional() || s.IsTerminal() {
				t.Errorf("%s: class %v, want stable", s, s.Class())
			}
			if s.InFlight() != "" || s.Target() != "" {
				t.Errorf("%s: stable state has InFlight %q Target %q", s, s.InFlight(), s.Target())
			}
		}
	}
	if State("bogus").Class() != 0 {
		t.Error("unknown state has a class")
	}
}

// wantDecide is the operation table written out for every (op, state) pair:
// "enter:<state>", "noop", "await" or "conflict".
var wantDecide = map[Op]map[State]string{
	OpStart: {
		Pending: "await", Provisioning: "await", Running: "noop", Stopping: "conflict",
		Stopped: "enter:starting", Starting: "await", Hibernating: "conflict",
		Hibernated: "enter:waking", Waking: "await", Failed: "enter:starting",
		Terminating: "conflict", Terminated: "conflict",
	},
	OpStop: {
		Pending: "conflict", Provisioning: "conflict", Running: "enter:stopping", Stopping: "await",
		Stopped: "noop", Starting: "conflict", Hibernating: "conflict",
		Hibernated: "enter:stopping", Waking: "conflict", Failed: "conflict",
		Terminating: "conflict", Terminated: "conflict",
	},
	OpHibernate: {
		Pending: "conflict", Provisioning: "conflict", Running: "enter:hibernating", Stopping: "conflict",
		Stopped: "conflict", Starting: "conflict", Hibernating: "await",
		Hibernated: "noop", Waking: "conflict", Failed: "conflict",
		Terminating: "conflict", Terminated: "conflict",
	},
	OpWake: {
		Pending: "conflict", Provisioning: "conflict", Running: "noop", Stopping: "conflict",
		Stopped: "conflict", Starting: "conflict", Hibernating: "conflict",
		Hibernated: "enter:waking", Waking: "await", Failed: "conflict",
		Terminating: "conflict", Terminated: "conflict",
	},
	OpDelete: {
		Pending: "enter:terminating", Provisioning: "enter:terminating", Running: "enter:terminating",
		Stopping: "enter:terminating", Stopped: "enter:terminating", Starting: "enter:terminating",
		Hibernating: "enter:terminating", Hibernated: "enter:terminating", Waking: "enter:terminating",
		Failed: "enter:terminating", Terminating: "await", Terminated: "noop",
	},
}

func TestDecideEveryPair(t *testing.T) {
	for _, op := range Ops {
		for _, s := range States {
			t.Run(fmt.Sprintf("%s@%s", op, s), func(t *testing.T) {
				want, ok := wantDecide[op][s]
				if !ok {
					t.Fatalf("test table misses (%s, %s)", op, s)
				}
				d, err := Decide(op, "p1", s)
				var got string
				switch {
				case err != nil:
					var ce *ConflictError
					if !errors.As(err, &ce) || !errdefs.IsConflict(err) {
						t.Fatalf("Decide error %v is not a conflict", err)
					}
					if ce.Op != op || ce.State != s || ce.PodID != "p1" {
						t.Fatalf("ConflictError %+v", ce)
					}
					wantMsg := fmt.Sprintf("cannot %s pod p1: pod is %s", op, s)
					if err.Error() != wantMsg {
						t.Fatalf("message %q, want %q", err, wantMsg)
					}
					got = "conflict"
				case d.Action == Proceed:
					if !d.Enter.IsTransitional() {
						t.Fatalf("proceed into non-transitional %s", d.Enter)
					}
					if !CanTransition(s, d.Enter) {
						t.Fatalf("proceed %s -> %s is not an allowed transition", s, d.Enter)
					}
					got = "enter:" + string(d.Enter)
				case d.Action == NoOp:
					got = "noop"
				case d.Action == Await:
					if !s.IsTransitional() && s != Pending {
						t.Fatalf("await in settled state %s", s)
					}
					got = "await"
				default:
					t.Fatalf("Decide = %+v", d)
				}
				if d.Action != Proceed && d.Enter != "" {
					t.Fatalf("Enter %q set for %v", d.Enter, d.Action)
				}
				if got != want {
					t.Fatalf("Decide(%s, %s) = %s, want %s", op, s, got, want)
				}
			})
		}
	}
}

func TestDecideInvalid(t *testing.T) {
	if _, err := Decide(OpCreate, "p1", Running); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Decide(create) = %v, want invalid argument", err)
	}
	if _, err := Decide("reboot", "p1", Running); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Decide(reboot) = %v, want invalid argument", err)
	}
	if _, err := Decide(OpStart, "p1", "bogus"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Decide(start, bogus) = %v, want invalid argument", err)
	}
}
