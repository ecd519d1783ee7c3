// Package errdefs is the one small set of error classes the node uses, and
// their mapping to API codes, HTTP statuses and CLI exit codes.
package errdefs

import (
	"context"
	"errors"
)

// HTTP statuses of the classes, spelled here rather than taken from
// net/http: pods' PID 1 (cmd/pinacle-init) uses these classes, and
// net/http (with crypto/tls and x509) would be linked into it for a few
// constants. errdefs_test checks them against net/http's.
const (
	statusBadRequest          = 400
	statusNotFound            = 404
	statusConflict            = 409
	statusInternalServerError = 500
	statusServiceUnavailable  = 503
	statusGatewayTimeout      = 504
	statusInsufficientStorage = 507
)

// The classes. Wrap them with context: fmt.Errorf("pod %s: %w", id, ErrNotFound).
var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrConflict        = errors.New("conflict")
	ErrUnavailable     = errors.New("unavailable")
	ErrResourceLimit   = errors.New("resource limit reached")
	// ErrUsage is a command line that cannot run (unknown command or flag,
	// missing argument): the CLI's own class, exit code 2.
	ErrUsage = errors.New("usage")
)

// Class describes one error class: its stable code, HTTP status and exit code.
type Class struct {
	Code     string
	HTTP     int
	ExitCode int
}

// Exit codes are part of the CLI contract (docs/cli.md); never renumber them.
const (
	ExitOK              = 0
	ExitInternal        = 1
	ExitUsage           = 2
	ExitNotFound        = 3
	ExitAlreadyExists   = 4
	ExitInvalidArgument = 5
	ExitConflict        = 6
	ExitUnavailable     = 7
	ExitResourceLimit   = 8
	ExitCanceled        = 9
	ExitTimeout         = 10
)

var classes = []struct {
	err error
	Class
}{
	{ErrNotFound, Class{"not_found", statusNotFound, ExitNotFound}},
	{ErrAlreadyExists, Class{"already_exists", statusConflict, ExitAlreadyExists}},
	{ErrInvalidArgument, Class{"invalid_argument", statusBadRequest, ExitInvalidArgument}},
	{ErrConflict, Class{"conflict", statusConflict, ExitConflict}},
	{ErrUnavailable, Class{"unavailable", statusServiceUnavailable, ExitUnavailable}},
	{ErrResourceLimit, Class{"resource_limit", statusInsufficientStorage, ExitResourceLimit}},
	{ErrUsage, Class{"usage", statusBadRequest, ExitUsage}},
	{context.Canceled, Class{"canceled", 499, ExitCanceled}},
	{context.DeadlineExceeded, Class{"timeout", statusGatewayTimeout, ExitTimeout}},
}

var internal = Class{"internal", statusInternalServerError, ExitInternal}

// Classify returns the class of err; unknown errors are internal.
func Classify(err error) Class {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.Class
		}
	}
	return internal
}

// FromCode returns the sentinel for a stable code, so a client can rebuild
// an error class from an API response. Unknown codes give nil.
func FromCode(code string) error {
	for _, c := range classes {
		if c.Code == code {
			return c.err
		}
	}
	return nil
}

// IsNotFound and friends are shorthands for errors.Is.
func IsNotFound(err error) bool        { return errors.Is(err, ErrNotFound) }
func IsAlreadyExists(err error) bool   { return errors.Is(err, ErrAlreadyExists) }
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }
func IsConflict(err error) bool        { return errors.Is(err, ErrConflict) }
