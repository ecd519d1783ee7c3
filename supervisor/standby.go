package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// OpClaim hands a standby init (a warm sandbox's) its pod: init reads its
// config file again and starts the services in it.
const OpClaim = "claim"

// awaitClaim is a standby init's wait: it serves socket until a root peer
// sends OpClaim, then loads configPath (the pod's config by now) and
// answers the claim with the outcome. A config that does not load is the
// claimer's error and init's: init exits, as it would have at a cold
// start. SIGTERM or SIGINT while waiting returns (nil, nil): init ends.
func awaitClaim(ctx context.Context, configPath, socket string, log *slog.Logger) (*Config, error) {
	ctx, stop := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stop()
	if !strings.HasPrefix(socket, "@") {
		os.Remove(socket)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("init: standby: %w", err)
	}
	defer ln.Close()
	context.AfterFunc(ctx, func() { ln.Close() })
	log.Info("init: standby, waiting for a claim", "socket", socket)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, fmt.Errorf("init: standby: %w", err)
		}
		cfg, done := answerClaim(c.(*net.UnixConn), configPath)
		if done {
			return cfg.cfg, cfg.err
		}
	}
}

type claimOutcome struct {
	cfg *Config
	err error
}

// answerClaim reads one request; done reports a claim (whatever its
// outcome), after which the standby ends.
func answerClaim(c *net.UnixConn, configPath string) (out claimOutcome, done bool) {
	defer c.Close()
	reply := func(err error) {
		resp := ControlResponse{Status: &Status{Services: []ServiceStatus{}}, Error: toControlError(err)}
		_ = json.NewEncoder(c).Encode(resp) // a claimer gone away learns from the status file
	}
	if err := checkPeerRoot(c); err != nil {
		reply(err)
		return out, false
	}
	var req ControlRequest
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	switch {
	case err != nil:
		reply(fmt.Errorf("control request: %w: %w", err, errdefs.ErrInvalidArgument))
		return out, false
	case req.Op != OpClaim:
		reply(fmt.Errorf("control op %q: this init is on standby; only claim: %w", req.Op, errdefs.ErrConflict))
		return out, false
	}
	cfg, err := LoadConfig(configPath)
	if err == nil && cfg.Standby {
		err = fmt.Errorf("claim: %s still says standby: %w", configPath, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		writeConfigError(statusFileOf(configPath), err)
		reply(err)
		return claimOutcome{err: err}, true
	}
	reply(nil)
	return claimOutcome{cfg: cfg}, true
}

// Claim is `init claim`, run by the node through runsc exec in a warm
// sandbox: it sets the pod's hostname (the sandbox's UTS namespace is
// the pod's; the exec carries CAP_SYS_ADMIN for this alone) and tells
// the standby init to take up its config.
func Claim(ctx context.Context, socket, hostname string) error {
	if hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("claim: sethostname %q: %w", hostname, err)
		}
	}
	_, err := Control(ctx, socket, ControlRequest{Op: OpClaim})
	return err
}
