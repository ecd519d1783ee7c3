package webterm

import (
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Defaults.
const (
	DefaultPort        = 3003
	DefaultMaxSessions = 64
	// DefaultHangupGrace is how long a hung-up shell has to exit before
	// its process group is killed.
	DefaultHangupGrace = 3 * time.Second
	// DefaultPingInterval keeps idle sessions alive through forwarders with
	// idle timeouts and finds browsers that vanished without a close.
	DefaultPingInterval = 30 * time.Second
)

// fallbackShells are tried in order when no shell is given.
var fallbackShells = []string{"/bin/bash", "/bin/sh"}

type config struct {
	shell        string
	login        bool
	dir          string
	env          []string
	token        string
	origins      []string
	maxSessions  int
	hangupGrace  time.Duration
	pingInterval time.Duration
	log          *slog.Logger
}

// Option configures a Handler.
type Option func(*config) error

// WithShell sets the shell: an absolute path to an executable. By default
// /bin/bash, or /bin/sh where there is no bash.
func WithShell(p string) Option {
	return func(c *config) error {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("shell %q: want an absolute path: %w", p, errdefs.ErrInvalidArgument)
		}
		if err := executable(p); err != nil {
			return fmt.Errorf("shell %q: %w", p, err)
		}
		c.shell = p
		return nil
	}
}

// WithLogin runs the shell as a login shell (argv[0] "-bash"), so it reads
// /etc/profile and ~/.profile. Off by default: Debian's /etc/profile
// resets PATH and loses what the image's ENV put there (golang, rust).
func WithLogin(login bool) Option {
	return func(c *config) error { c.login = login; return nil }
}

// WithDir sets the shell's working directory; by default the server's own.
func WithDir(dir string) Option {
	return func(c *config) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("dir %q: want an absolute path: %w", dir, errdefs.ErrInvalidArgument)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("dir: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		if !fi.IsDir() {
			return fmt.Errorf("dir %q: not a directory: %w", dir, errdefs.ErrInvalidArgument)
		}
		c.dir = dir
		return nil
	}
}

// WithEnv sets the shell's environment (KEY=VALUE); by default the
// server's own. TERM=xterm-256color and COLORTERM=truecolor are always set.
func WithEnv(env []string) Option {
	return func(c *config) error { c.env = append([]string(nil), env...); return nil }
}

// WithToken requires the token: the page needs ?token=TOKEN and so does the
// websocket. An empty token is rejected rather than read as "no token".
func WithToken(token string) Option {
	return func(c *config) error {
		if token == "" {
			return fmt.Errorf("token: empty: %w", errdefs.ErrInvalidArgument)
		}
		c.token = token
		return nil
	}
}

// WithAllowedOrigins lets pages from other origins open the websocket (and
// frame the page). Patterns are matched with path.Match against the
// Origin's host ("*.example.com"), or against scheme://host when they
// contain "://". The request's own host is always allowed.
func WithAllowedOrigins(patterns ...string) Option {
	return func(c *config) error {
		for _, p := range patterns {
			if p == "" || p == "*" {
				return fmt.Errorf("origin pattern %q: too broad or empty: %w", p, errdefs.ErrInvalidArgument)
			}
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("origin pattern %q: %w", p, errdefs.ErrInvalidArgument)
			}
		}
		c.origins = append(c.origins, patterns...)
		return nil
	}
}

// WithMaxSessions caps concurrent sessions (default 64).
func WithMaxSessions(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("max sessions %d: want > 0: %w", n, errdefs.ErrInvalidArgument)
		}
		c.maxSessions = n
		return nil
	}
}

// WithHangupGrace sets how long a shell has after SIGHUP before its
// process group is SIGKILLed (default 3s).
func WithHangupGrace(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("hangup grace %s: want > 0: %w", d, errdefs.ErrInvalidArgument)
		}
		c.hangupGrace = d
		return nil
	}
}

// WithPingInterval sets the websocket keepalive (default 30s); a peer
// that does not answer a ping within the interval is disconnected.
func WithPingInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("ping interval %s: want > 0: %w", d, errdefs.ErrInvalidArgument)
		}
		c.pingInterval = d
		return nil
	}
}

// WithLogger logs sessions; silent by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("logger: nil: %w", errdefs.ErrInvalidArgument)
		}
		c.log = l
		return nil
	}
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("not an executable file: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		maxSessions:  DefaultMaxSessions,
		hangupGrace:  DefaultHangupGrace,
		pingInterval: DefaultPingInterval,
		log:          slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.shell == "" {
		for _, s := range fallbackShells {
			if executable(s) == nil {
				c.shell = s
				break
			}
		}
		if c.shell == "" {
			return nil, fmt.Errorf("no shell: none of %v: %w", fallbackShells, errdefs.ErrNotFound)
		}
	}
	if c.env == nil {
		c.env = os.Environ()
	}
	return c, nil
}
