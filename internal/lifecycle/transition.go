package lifecycle

import (
	"fmt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// transitions lists, for each state, the states it may move to. Beyond the
// happy paths two rules apply everywhere: every state but terminated may move
// to terminating (delete always wins), and every state but terminated may
// move to failed (an operation failed, or the sandbox died under us).
// Terminating may fail too, so a teardown that cannot finish is visible and a
// new Delete retries it.
var transitions = map[State][]State{
	Pending:      {Provisioning},
	Provisioning: {Running},
	Running:      {Stopping, Hibernating},
	Stopping:     {Stopped},
	Stopped:      {Starting},
	Starting:     {Running},
	// A checkpoint that fails before the sandbox is torn down leaves it
	// running: rolling back to running is more truthful than failed.
	Hibernating: {Hibernated, Running},
	// Stop on a hibernated pod discards the checkpoint: there is no sandbox
	// to kill, and the pod cold-boots on the next Start. There is no
	// hibernated -> starting edge: waking is how a hibernated pod runs again,
	// and Start on a hibernated pod means Wake (see Decide).
	Hibernated:  {Waking, Stopping},
	Waking:      {Running},
	Failed:      {Starting}, // retry
	Terminating: {Terminated},
	Terminated:  nil,
}

var allowed = func() map[State]map[State]bool {
	m := make(map[State]map[State]bool, len(States))
	for _, from := range States {
		m[from] = map[State]bool{}
		for _, to := range transitions[from] {
			m[from][to] = true
		}
		if from != Terminated {
			if from != Terminating {
				m[from][Terminating] = true
			}
			if from != Failed {
				m[from][Failed] = true
			}
		}
	}
	return m
}()

// CanTransition reports whether a pod may move from one state to another.
// A state never transitions to itself.
func CanTransition(from, to State) bool { return allowed[from][to] }

// Next returns the states reachable from s in one step, in lifecycle order.
func Next(s State) []State {
	var out []State
	for _, to := range States {
		if allowed[s][to] {
			out = append(out, to)
		}
	}
	return out
}

// TransitionError is returned for a move the state machine does not allow.
// It wraps errdefs.ErrConflict (or ErrInvalidArgument for unknown states).
type TransitionError struct {
	From, To State
}

func (e *TransitionError) Error() string {
	if !e.From.Valid() || !e.To.Valid() {
		return fmt.Sprintf("invalid transition from %q to %q: unknown state", e.From, e.To)
	}
	return fmt.Sprintf("invalid transition from %s to %s", e.From, e.To)
}

func (e *TransitionError) Unwrap() error {
	if !e.From.Valid() || !e.To.Valid() {
		return errdefs.ErrInvalidArgument
	}
	return errdefs.ErrConflict
}

// CheckTransition returns nil if from -> to is allowed and a
// *TransitionError otherwise.
func CheckTransition(from, to State) error {
	if CanTransition(from, to) {
		return nil
	}
	return &TransitionError{From: from, To: to}
}
