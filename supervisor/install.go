package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// installMarker is the file whose existence says the service's install
// started and never finished: a sandbox killed mid-install (a node crash,
// an OOM, a kill from outside) leaves its creates path half made (an empty
// file, a partial node_modules), and the next start must not take that for
// done. It sits in the run directory beside the status file, which
// outlives the sandbox; creating and removing it are metadata operations
// that reach the host at once.
func (r *runner) installMarker() string {
	return filepath.Join(filepath.Dir(r.sup.cfg.StatusFile), "installing", r.spec.Name)
}

// install runs the install step once, when configured and its Creates
// path is missing or an earlier install was cut short. It returns false
// when the service cannot run.
func (r *runner) install() (bool, *command) {
	s := r.sup
	s.mu.Lock()
	done := r.installed
	s.mu.Unlock()
	if done || len(r.spec.Install) == 0 {
		return true, nil
	}
	marker := r.installMarker()
	_, err := os.Stat(marker)
	interrupted := err == nil
	if r.spec.Creates != "" && !interrupted {
		if _, err := os.Stat(r.spec.Creates); err == nil {
			return true, nil
		}
	}
	if err := r.checkUser(); err != nil {
		r.setState(StateFailed, err.Error())
		return false, nil
	}
	if err := markInstalling(marker); err != nil {
		r.setState(StateFailed, "install: "+err.Error())
		return false, nil
	}
	r.setState(StateInstalling, "")
	if interrupted {
		r.logw.eventf("install: an earlier install did not finish; running it again")
	}
	r.logw.eventf("install: %s", strings.Join(r.spec.Install, " "))
	pid, exited, err := r.spawn(r.spec.Install)
	if err != nil {
		r.setState(StateFailed, "install: "+err.Error())
		return false, nil
	}
	st, c := r.waitProc(pid, exited)
	if c != nil {
		return false, c
	}
	if st.code != 0 {
		r.setState(StateFailed, "install "+strings.Join(r.spec.Install, " ")+": "+st.err())
		return false, nil
	}
	if r.spec.Creates != "" {
		if _, err := os.Stat(r.spec.Creates); err != nil {
			r.setState(StateFailed, fmt.Sprintf("install succeeded but did not create %s", r.spec.Creates))
			return false, nil
		}
	}
	// Under gVisor, written file data can still sit in the sentry's own
	// page cache (the gofer's exclusive mode writes back lazily): a
	// sandbox killed after the marker's removal would otherwise lose part
	// of an install that was already called done.
	syscall.Sync()
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.setState(StateFailed, "install: "+err.Error())
		return false, nil
	}
	s.mu.Lock()
	r.installed = true
	s.mu.Unlock()
	return true, nil
}

// markInstalling creates the install marker (and its directory).
func markInstalling(marker string) error {
	if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
