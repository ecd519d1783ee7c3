package pods

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pinacle/pinacle-node/gateway"
	"github.com/pinacle/pinacle-node/internal/fileutil"
	"github.com/pinacle/pinacle-node/oci"
	"github.com/pinacle/pinacle-node/podspec"
)

// Services that serve a web UI with a shell behind it (the web terminal,
// code-server, Jupyter) each check a secret the node makes per pod, so
// their raw host port (loopback, but open to any local process and to web
// pages through DNS rebinding) answers nobody without it, and the gateway
// presents it on the user's behalf, so a user with a signed link never
// sees a login page. A service opts in by naming its secret's file under
// /.pinacle/config in its command or environment (the built-in service
// definitions in templates/services do); the gateway presents a secret
// only to the port of a service that names it.

// serviceSecret is one kind of per-pod secret: its file in the pod's
// config directory and how the gateway presents it to the service.
type serviceSecret struct {
	file    string
	present func(be *gateway.Backend, secret string)
}

// serviceSecrets are every kind the node makes, for every pod.
var serviceSecrets = []serviceSecret{
	// pinacle-node webterm --token-file: a bearer token.
	{file: webtermTokenFile, present: func(be *gateway.Backend, s string) {
		be.Header = http.Header{"Authorization": {"Bearer " + s}}
	}},
	// Jupyter reads $JUPYTER_TOKEN_FILE; a request with the token in
	// Authorization needs no login and no XSRF cookie.
	{file: "jupyter.token", present: func(be *gateway.Backend, s string) {
		be.Header = http.Header{"Authorization": {"token " + s}}
	}},
	// code-server with --auth password and $HASHED_PASSWORD set to the
	// secret (not argon2, so code-server treats it as a legacy SHA-256
	// hash) admits a session cookie equal to it.
	{file: "code-server.token", present: func(be *gateway.Backend, s string) {
		be.Cookies = []*http.Cookie{{Name: "code-server-session", Value: s}}
	}},
}

// webtermTokenFile is the web terminal's secret (docs/webterm.md).
const webtermTokenFile = "webterm.token"

// newSecret is the one place a service secret is drawn: 32 random bytes,
// hex (no newline: Jupyter reads its token file verbatim).
func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("service secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ensureServiceSecrets makes each of the pod's service secrets that is
// missing, once: it then lives as long as the pod's directory, across
// stop, start, hibernate and node restarts, since a running service read
// it when it started. A copy of a pod (a fork) must not carry its
// origin's files (config/*.token) but let this make new ones. Each file
// is 0600 and owned by the user of the service that names it (else the
// pod's user), who must read it inside the sandbox; a user the image does
// not know leaves it root's, and then 0644, as it is in a directory only
// this pod mounts.
func (m *Manager) ensureServiceSecrets(id, root string, spec *podspec.Pod) error {
	for _, ss := range serviceSecrets {
		path := filepath.Join(m.configDir(id), ss.file)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			s, err := newSecret()
			if err != nil {
				return err
			}
			if err := fileutil.WriteAtomic(path, []byte(s), 0o600); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if err := ownSecret(path, root, secretUser(spec, ss.file)); err != nil {
			return fmt.Errorf("pod %s: %s: %w", id, ss.file, err)
		}
	}
	return nil
}

// ownSecret gives path to user (resolved in the rootfs at root), 0600. No
// user: the daemon's own (root), as the file was made.
func ownSecret(path, root, user string) error {
	if user == "" {
		return os.Chmod(path, 0o600)
	}
	u, err := oci.ResolveUser(root, user)
	if err != nil {
		return os.Chmod(path, 0o644)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != u.UID || st.Gid != u.GID {
		if err := os.Lchown(path, int(u.UID), int(u.GID)); err != nil {
			return err
		}
	}
	return os.Chmod(path, 0o600)
}

// secretUser is the user of the first service that names file, else the
// pod's.
func secretUser(spec *podspec.Pod, file string) string {
	for _, s := range spec.Services {
		if namesSecret(s, file) && s.User != "" {
			return s.User
		}
	}
	return spec.User
}

// namesSecret says whether service s reads the secret file: its path in
// the sandbox is in its command or its environment.
func namesSecret(s podspec.Service, file string) bool {
	path := sandboxConfig + "/" + file
	has := func(v string) bool { return strings.Contains(v, path) }
	return slices.ContainsFunc(s.Command, has) || slices.ContainsFunc(slices.Collect(maps.Values(s.Env)), has)
}

// readsSecret says whether service s reads any per-pod secret at start: a
// pod restored from another pod's checkpoint (a fork, a template
// snapshot) must restart it, as it still holds its origin's.
func readsSecret(s podspec.Service) bool {
	return slices.ContainsFunc(serviceSecrets, func(ss serviceSecret) bool { return namesSecret(s, ss.file) })
}

// presentSecrets adds to be the secrets of the services of spec on port,
// read from the pod's config directory.
func (m *Manager) presentSecrets(id string, spec *podspec.Pod, port int, be *gateway.Backend) error {
	for _, s := range spec.Services {
		if s.Port != port || !readsSecret(s) {
			continue
		}
		for _, ss := range serviceSecrets {
			if !namesSecret(s, ss.file) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(m.configDir(id), ss.file))
			if err != nil {
				return fmt.Errorf("pod %s: %s: %w", id, ss.file, err)
			}
			ss.present(be, strings.TrimSpace(string(b)))
		}
	}
	return nil
}
