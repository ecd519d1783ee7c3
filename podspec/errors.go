package podspec

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// FieldError is one problem with one field of a spec. Field is a path
// such as "services[2].dependsOn" or "network.ports[0].external"; empty
// for the document as a whole.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// ValidationError is every problem found in a spec, reported at once. It
// is an errdefs.ErrInvalidArgument: errors.Is(err, errdefs.ErrInvalidArgument).
type ValidationError struct {
	Errors []FieldError `json:"errors"`
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return e.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors:", len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Unwrap makes a ValidationError an invalid-argument error.
func (e *ValidationError) Unwrap() error { return errdefs.ErrInvalidArgument }

// errList collects FieldErrors; err returns nil when there are none.
type errList struct{ errs []FieldError }

func (l *errList) add(field, format string, args ...any) {
	l.errs = append(l.errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: l.errs}
}

// Field paths.

var identLike = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`) })

// Join appends a key to a field path: a.b, or a["odd key"] when the key
// is not identifier-like.
func Join(path, key string) string {
	if !identLike().MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index appends a list index to a field path: a[3].
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }
