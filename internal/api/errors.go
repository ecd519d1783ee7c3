package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// ErrorBody is the JSON body of every API error: the CLI's error shape
// plus, for a spec that failed validation, every field error at once.
type ErrorBody struct {
	cli.ErrorBody
	Fields []podspec.FieldError `json:"fields,omitempty"`
}

// Error is an error the node returned. It matches its class with
// errors.Is (errdefs.ErrNotFound, ...), and a validation error also
// matches errors.As(err, **podspec.ValidationError).
type Error struct {
	Status int // HTTP status
	Body   ErrorBody
}

func (e *Error) Error() string { return e.Body.Message }

// Unwrap gives the class sentinel and, for field errors, the rebuilt
// *podspec.ValidationError.
func (e *Error) Unwrap() []error {
	var errs []error
	if s := errdefs.FromCode(e.Body.Code); s != nil {
		errs = append(errs, s)
	}
	if len(e.Body.Fields) > 0 {
		errs = append(errs, &podspec.ValidationError{Errors: e.Body.Fields})
	}
	return errs
}

// errorFromBody rebuilds an error from a response body; a body that is
// not an ErrorBody (a proxy, a panic page) still gives the HTTP status's class.
func errorFromBody(status int, raw []byte) error {
	var b ErrorBody
	if err := json.Unmarshal(raw, &b); err != nil || b.Code == "" {
		b = ErrorBody{ErrorBody: cli.ErrorBody{Code: codeForStatus(status), Message: fmt.Sprintf("pinacle-node: HTTP %d: %s", status, truncate(raw, 200))}}
	}
	return &Error{Status: status, Body: b}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		return "invalid_argument"
	case http.StatusConflict:
		return "conflict"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "internal"
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// unreachableError says the daemon's socket could not be dialled.
type unreachableError struct {
	path  string
	cause error
}

func (e *unreachableError) Error() string {
	if errors.Is(e.cause, syscall.EACCES) || errors.Is(e.cause, syscall.EPERM) {
		return fmt.Sprintf("cannot reach pinacle-node at %s: permission denied (run as root or as a member of group %q)", e.path, DefaultSocketGroup)
	}
	return fmt.Sprintf("cannot reach pinacle-node at %s: is `pinacle-node serve` running?", e.path)
}

func (e *unreachableError) Unwrap() []error { return []error{errdefs.ErrUnavailable, e.cause} }
