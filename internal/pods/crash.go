package pods

import (
	"os"
	"syscall"
)

// crashAt names a point at which the daemon kills itself with SIGKILL
// (env PINACLE_CRASH_AT). Only the crash-safety e2e test sets it: a real
// SIGKILL cannot otherwise be aimed at one step of an operation.
var crashAt = os.Getenv("PINACLE_CRASH_AT")

// crashpoint dies here if asked to; the points are listed in CrashPoints.
func crashpoint(name string) {
	if crashAt != "" && crashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}

// CrashPoints are the places crashpoint is called, per operation: after
// each of podSteps (up:, down:, del: and the step's name), and up:recorded
// and del:down between them.
var CrashPoints = podSteps.crashPoints()
