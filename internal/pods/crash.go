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
// each of podSteps (up:, down:, del: and the step's name), up:recorded
// and del:down between them, and after each step of hibernate and wake.
var CrashPoints = crashPoints()

// crashPoints adds hibernate's and wake's (hibernate:, wake: and the
// step's name) to the bring-up's.
func crashPoints() map[string][]string {
	cp := podSteps.crashPoints()
	cp["hibernate"] = hibernateSteps().upPoints()
	cp["wake"] = wakeSteps().upPoints()
	return cp
}
