package errdefs

import (
	"fmt"
	"regexp"
	"sync"
)

// idPattern is what IDs may look like before they become path elements:
// lowercase alphanumerics, '-', '_' and '.', not starting with '.' or '-'.
var idPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`) })

// ValidateID rejects IDs that could escape a directory or confuse a tool.
func ValidateID(kind, id string) error {
	if !idPattern().MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("%s id %q: must match %s: %w", kind, id, idPattern(), ErrInvalidArgument)
	}
	return nil
}
