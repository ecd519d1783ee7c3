package lifecycle

import (
	"fmt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// State is where a pod is in its life. The string values are persisted and
// shown to users; never rename them.
type State string

// The states. Transitional states (provisioning, stopping, starting,
// hibernating, waking, terminating) mean an operation is in flight; a pod
// found in one after a daemon restart had its operation interrupted.
const (
	Pending      State = "pending"      // accepted, nothing done yet
	Provisioning State = "provisioning" // image, rootfs, netns, ports, sandbox being set up
	Running      State = "running"
	Stopping     State = "stopping"
	Stopped      State = "stopped" // sandbox gone, rootfs/workspace/allocations kept
	Starting     State = "starting"
	Hibernating  State = "hibernating" // checkpoint in progress
	Hibernated   State = "hibernated"  // sandbox checkpointed to disk and gone
	Waking       State = "waking"      // restore from checkpoint in progress
	Failed       State = "failed"      // an operation failed; Reason says why
	Terminating  State = "terminating" // delete in progress
	Terminated   State = "terminated"  // everything released; only the record is left
)

// States lists every state in lifecycle order.
var States = []State{
	Pending, Provisioning, Running, Stopping, Stopped, Starting,
	Hibernating, Hibernated, Waking, Failed, Terminating, Terminated,
}

// Class groups states by what the pod manager has to do with them.
type Class int

const (
	// Stable states hold until a user operation or an external event
	// (sandbox death, OOM) moves the pod.
	Stable Class = iota + 1
	// Transitional states mean an operation is in flight. After a daemon
	// restart the manager must finish or undo it.
	Transitional
	// Terminal states are final: no transition leaves them.
	Terminal
)

func (c Class) String() string {
	switch c {
	case Stable:
		return "stable"
	case Transitional:
		return "transitional"
	case Terminal:
		return "terminal"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

type stateInfo struct {
	class Class
	// op is the operation a transitional state carries out.
	op Op
	// target is where a transitional state goes when its operation succeeds.
	target State
}

var info = map[State]stateInfo{
	Pending:      {class: Stable},
	Provisioning: {Transitional, OpCreate, Running},
	Running:      {class: Stable},
	Stopping:     {Transitional, OpStop, Stopped},
	Stopped:      {class: Stable},
	Starting:     {Transitional, OpStart, Running},
	Hibernating:  {Transitional, OpHibernate, Hibernated},
	Hibernated:   {class: Stable},
	Waking:       {Transitional, OpWake, Running},
	Failed:       {class: Stable},
	Terminating:  {Transitional, OpDelete, Terminated},
	Terminated:   {class: Terminal},
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool { _, ok := info[s]; return ok }

// Class returns the state's class, or 0 for an unknown state.
func (s State) Class() Class { return info[s].class }

// IsTransitional reports whether an operation is in flight in state s.
func (s State) IsTransitional() bool { return s.Class() == Transitional }

// IsStable reports whether s is a resting state (pending, running, stopped,
// hibernated, failed).
func (s State) IsStable() bool { return s.Class() == Stable }

// IsTerminal reports whether s is terminated.
func (s State) IsTerminal() bool { return s.Class() == Terminal }

// InFlight returns the operation a transitional state is carrying out
// (provisioning: create, stopping: stop, ..., terminating: delete), or ""
// for other states. Crash recovery uses it to know what to resume.
func (s State) InFlight() Op { return info[s].op }

// Target returns the state a transitional state moves to when its operation
// succeeds (stopping: stopped, waking: running, ...), or "" for other states.
func (s State) Target() State { return info[s].target }

func (s State) String() string { return string(s) }

// ParseState validates a state name, as read from a flag or an API query.
func ParseState(v string) (State, error) {
	s := State(v)
	if !s.Valid() {
		return "", fmt.Errorf("state %q: must be one of %v: %w", v, States, errdefs.ErrInvalidArgument)
	}
	return s, nil
}
