package oci

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// runscError is a failed runsc call: the subcommand, its exit code and the
// message runsc logged.
type runscError struct {
	cmd   string
	code  int
	msg   string
	class error
}

func (e *runscError) Error() string {
	s := fmt.Sprintf("runsc %s: exit %d", e.cmd, e.code)
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.class != nil {
		s += ": " + e.class.Error()
	}
	return s
}

func (e *runscError) Unwrap() error { return e.class }

// The one place that knows runsc's wording. Each entry is produced for real
// by a test in runsc_test.go (TestErrorClasses), so a runsc upgrade that
// changes the wording fails there rather than in production.
var runscErrorClasses = []struct {
	substr []string // all must appear
	class  error
}{
	// container.Load on an unknown ID: "loading container: file does not exist".
	{[]string{"loading container", "file does not exist"}, errdefs.ErrNotFound},
	{[]string{"container", "not found"}, errdefs.ErrNotFound},
	// create with an ID in use: "cannot lock container metadata file: container already exists".
	{[]string{"container already exists"}, errdefs.ErrAlreadyExists},
	// delete without --force of a live container.
	{[]string{"cannot delete container that is not stopped"}, errdefs.ErrConflict},
	// start of a container that is not in the created state, kill of a stopped one.
	{[]string{"cannot start container", "in state"}, errdefs.ErrConflict},
	{[]string{"is not running"}, errdefs.ErrConflict},
}

func classifyRunsc(msg string) error {
	for _, c := range runscErrorClasses {
		all := true
		for _, s := range c.substr {
			if !strings.Contains(msg, s) {
				all = false
				break
			}
		}
		if all {
			return c.class
		}
	}
	return nil
}

// logMessage extracts the last error message from runsc's JSON log, or the
// tail of its stderr.
func logMessage(log, stderr []byte) string {
	var last string
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l struct{ Msg, Level string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && (l.Level == "error" || l.Level == "fatal") {
			last = l.Msg
		}
	}
	if last == "" {
		last = tail(stderr, 1024)
	}
	return strings.TrimSpace(last)
}

func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
