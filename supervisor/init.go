package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/fileutil"
)

// InitMemoryLimit is init's soft Go heap limit unless GOMEMLIMIT is set:
// init's own heap is small (status, a few goroutines per service), and a
// low limit keeps its RSS flat inside every pod.
const InitMemoryLimit = 8 << 20

// RunInit is `pinacle-node init`: it loads the config, becomes the reaper
// of every orphan (it is PID 1 in the sandbox; elsewhere it makes itself a
// child subreaper), supervises the services until SIGTERM or SIGINT (or ctx
// is done), stops them and returns. SIGHUP, SIGUSR1 and SIGUSR2 are
// forwarded to every service's process group.
//
// A config that does not validate is reported in the status file (when its
// path is known) and returned: the sandbox's PID 1 exiting is how the node
// learns the pod cannot run.
func RunInit(ctx context.Context, configPath string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(InitMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("init: become child subreaper: %w", err)
		}
	}
	cfg, err := LoadConfig(configPath)
	if err != nil {
		writeConfigError(statusFileOf(configPath), err)
		return err
	}
	if cfg.Standby {
		if cfg, err = awaitClaim(ctx, configPath, cfg.ControlSocket, log); err != nil || cfg == nil {
			return err
		}
	}
	sup, err := New(cfg, WithLogger(log), WithReapAll(true))
	if err != nil {
		writeConfigError(cfg.StatusFile, err)
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				s := sig.(unix.Signal)
				switch s {
				case unix.SIGTERM, unix.SIGINT:
					log.Info("init: stopping", "signal", unix.SignalName(s))
					cancel()
				default:
					log.Info("init: forwarding", "signal", unix.SignalName(s))
					sup.Signal(s)
				}
			}
		}
	}()
	log.Info("init: running", "pid", os.Getpid(), "config", configPath, "services", len(cfg.Services))
	return sup.Run(ctx)
}

// writeConfigError leaves the reason a pod could not start where the node
// looks for status. Best effort: the directory may not exist.
func writeConfigError(path string, err error) {
	st := Status{UpdatedAt: time.Now().UTC(), InitPid: os.Getpid(), Error: err.Error(), Services: []ServiceStatus{}}
	b, _ := json.MarshalIndent(st, "", "  ") // a Status always encodes
	if os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		// Nowhere better to report a failure to report: the node then
		// sees no status and the sandbox's exit.
		_ = fileutil.WriteAtomic(path, append(b, '\n'), 0o644)
	}
}

// statusFileOf digs the status file path out of a config that failed to
// load, so its error lands where the node will look.
func statusFileOf(configPath string) string {
	var c struct {
		StatusFile string `json:"statusFile"`
	}
	if b, err := os.ReadFile(configPath); err == nil && json.Unmarshal(b, &c) == nil && c.StatusFile != "" {
		return c.StatusFile
	}
	return DefaultStatusFile
}
