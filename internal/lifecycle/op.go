package lifecycle

import (
	"fmt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Op is an operation a user (or the node itself) asks of a pod.
type Op string

// The operations. OpCreate is carried out by provisioning; it is never asked
// of an existing pod, so Decide does not accept it.
const (
	OpCreate    Op = "create"
	OpStart     Op = "start"
	OpStop      Op = "stop"
	OpHibernate Op = "hibernate"
	OpWake      Op = "wake"
	OpDelete    Op = "delete"
)

// Ops lists the operations Decide accepts.
var Ops = []Op{OpStart, OpStop, OpHibernate, OpWake, OpDelete}

func (o Op) String() string { return string(o) }

// Action is what the manager should do with an operation.
type Action int

const (
	// Proceed: enter Decision.Enter (a transitional state) and carry the
	// operation out.
	Proceed Action = iota + 1
	// NoOp: the pod is already where the operation would take it (start on
	// running, stop on stopped, delete on terminated). Succeed, do nothing.
	NoOp
	// Await: the same operation, or one with the same outcome, is already in
	// flight (start on starting or waking, delete on terminating). Wait for
	// the pod to reach a stable state and decide again; a caller that cannot
	// wait may treat it as a conflict.
	Await
)

func (a Action) String() string {
	switch a {
	case Proceed:
		return "proceed"
	case NoOp:
		return "no-op"
	case Await:
		return "await"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is the outcome of Decide when the operation is not a conflict.
type Decision struct {
	Action Action
	// Enter is the transitional state to move to; set only for Proceed.
	Enter State
}

// rule is one row of the operation table: what op does in each state. A
// state missing from a row is a conflict.
type rule map[State]Decision

func proceed(s State) Decision { return Decision{Action: Proceed, Enter: s} }

var (
	noop  = Decision{Action: NoOp}
	await = Decision{Action: Await}
)

// table is the whole contract between user operations and states; docs/state.md
// prints it. Start means "make it run": on a hibernated pod that is a wake,
// and on a failed pod it is the retry.
var table = map[Op]rule{
	OpStart: {
		Pending:      await, // provisioning will bring it up
		Provisioning: await,
		Running:      noop,
		Stopped:      proceed(Starting),
		Starting:     await,
		Hibernated:   proceed(Waking),
		Waking:       await,
		Failed:       proceed(Starting),
	},
	OpStop: {
		Running:    proceed(Stopping),
		Stopping:   await,
		Stopped:    noop,
		Hibernated: proceed(Stopping), // discards the checkpoint
	},
	OpHibernate: {
		Running:     proceed(Hibernating),
		Hibernating: await,
		Hibernated:  noop,
	},
	OpWake: {
		Running:    noop,
		Hibernated: proceed(Waking),
		Waking:     await,
	},
	OpDelete: {
		// Delete wins over everything. From a transitional state the
		// manager must cancel the operation in flight before it enters
		// terminating (State.IsTransitional tells it so).
		Pending:      proceed(Terminating),
		Provisioning: proceed(Terminating),
		Running:      proceed(Terminating),
		Stopping:     proceed(Terminating),
		Stopped:      proceed(Terminating),
		Starting:     proceed(Terminating),
		Hibernating:  proceed(Terminating),
		Hibernated:   proceed(Terminating),
		Waking:       proceed(Terminating),
		Failed:       proceed(Terminating),
		Terminating:  await,
		Terminated:   noop,
	},
}

// ConflictError says an operation makes no sense in the pod's current
// state. It wraps errdefs.ErrConflict.
type ConflictError struct {
	Op    Op
	PodID string
	State State
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("cannot %s pod %s: pod is %s", e.Op, e.PodID, e.State)
}

func (e *ConflictError) Unwrap() error { return errdefs.ErrConflict }

// Decide says what op means for a pod in state s: proceed into a
// transitional state, succeed as a no-op, await an operation in flight, or
// a *ConflictError. Unknown operations or states are invalid arguments.
func Decide(op Op, podID string, s State) (Decision, error) {
	r, ok := table[op]
	if !ok {
		return Decision{}, fmt.Errorf("operation %q: must be one of %v: %w", op, Ops, errdefs.ErrInvalidArgument)
	}
	if !s.Valid() {
		return Decision{}, fmt.Errorf("pod %s: unknown state %q: %w", podID, s, errdefs.ErrInvalidArgument)
	}
	d, ok := r[s]
	if !ok {
		return Decision{}, &ConflictError{Op: op, PodID: podID, State: s}
	}
	return d, nil
}
