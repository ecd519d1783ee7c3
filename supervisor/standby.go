package supervisor

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// ClaimPort is the TCP port a standby init listens on, on the pod's
// address, for the node's claim. Nothing else runs in a standby sandbox,
// and the listener is closed before any service starts, so no service's
// port can collide with it.
const ClaimPort = 61999

// ClaimConfig is how a standby init is claimed: over TCP on Listen, by a
// peer that knows Token (the node made it and wrote it into the standby
// config only). The claim's channel is the pod's own network, reachable
// from the node without starting a process in the sandbox.
type ClaimConfig struct {
	Listen string `json:"listen"`
	Token  string `json:"token"`
}

// ClaimRequest is the node's one JSON line on the claim channel.
type ClaimRequest struct {
	Token string `json:"token"`
	// Hostname is the pod's: init sets it in the sandbox's UTS namespace
	// (it holds CAP_SYS_ADMIN until then, and drops it before any
	// service runs).
	Hostname string `json:"hostname,omitempty"`
}

// awaitClaim is a standby init's wait: it serves cc.Listen until a peer
// sends the right token, then sets the hostname, loads configPath (the
// pod's config by now) and answers the claim with the outcome; the
// listener is closed before it returns, so nothing in the pod can claim
// it again. A config that does not load is the claimer's error and
// init's: init exits, as it would have at a cold start. SIGTERM or
// SIGINT while waiting returns (nil, nil): init ends.
func awaitClaim(ctx context.Context, configPath string, cc ClaimConfig, log *slog.Logger) (*Config, error) {
	ctx, stop := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", cc.Listen)
	if err != nil {
		return nil, fmt.Errorf("init: standby: %w", err)
	}
	defer ln.Close()
	context.AfterFunc(ctx, func() { ln.Close() })
	log.Info("init: standby, waiting for a claim", "listen", cc.Listen)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, fmt.Errorf("init: standby: %w", err)
		}
		out, done := answerClaim(c, configPath, cc.Token)
		if done {
			return out.cfg, out.err
		}
	}
}

type claimOutcome struct {
	cfg *Config
	err error
}

// answerClaim reads one request; done reports a claim with the right
// token (whatever its outcome), after which the standby ends. A wrong
// token is refused and the wait goes on.
func answerClaim(c net.Conn, configPath, token string) (out claimOutcome, done bool) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second)) // one slow peer must not hold the claim up long
	reply := func(err error) {
		resp := ControlResponse{Status: &Status{Services: []ServiceStatus{}}, Error: toControlError(err)}
		_ = json.NewEncoder(c).Encode(resp) // a claimer gone away learns from the status file
	}
	var req ClaimRequest
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	switch {
	case err != nil:
		reply(fmt.Errorf("claim request: %w: %w", err, errdefs.ErrInvalidArgument))
		return out, false
	case token == "" || subtle.ConstantTimeCompare([]byte(req.Token), []byte(token)) != 1:
		reply(fmt.Errorf("claim: wrong token: %w", errdefs.ErrInvalidArgument))
		return out, false
	}
	if req.Hostname != "" {
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			err = fmt.Errorf("claim: sethostname %q: %w", req.Hostname, err)
			writeConfigError(statusFileOf(configPath), err)
			reply(err)
			return claimOutcome{err: err}, true
		}
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

// claimDialWindow bounds the retries of a refused claim connection: a
// ready entry's init listens within moments of its start, so a longer
// refusal means init is gone, and the claim should fail over to a cold
// create rather than wait.
const claimDialWindow = 5 * time.Second

// Claim is the node's side: it sends req to the standby init at addr
// and returns the outcome init reports. A refused connection is retried
// for a few seconds (the entry's init may still be starting).
func Claim(ctx context.Context, addr string, req ClaimRequest) error {
	var d net.Dialer
	var c net.Conn
	var err error
	dctx, cancel := context.WithTimeout(ctx, claimDialWindow)
	defer cancel()
	for {
		if c, err = d.DialContext(dctx, "tcp", addr); err == nil {
			break
		}
		select {
		case <-dctx.Done():
			return fmt.Errorf("claim %s: %w: %w", addr, err, errdefs.ErrUnavailable)
		case <-time.After(20 * time.Millisecond):
		}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	b, _ := json.Marshal(req) // plain strings always encode
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("claim %s: %w: %w", addr, err, errdefs.ErrUnavailable)
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("claim %s: reading the reply: %w: %w", addr, err, errdefs.ErrUnavailable)
	}
	return resp.Error.Err()
}
