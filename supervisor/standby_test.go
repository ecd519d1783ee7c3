package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

type claimed struct {
	cfg *Config
	err error
}

// standby starts awaitClaim on a free loopback port with token and
// returns the claim address and the outcome's channel.
func standby(t *testing.T, ctx context.Context, cfgPath, token string) (string, chan claimed) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	done := make(chan claimed, 1)
	go func() {
		c, err := awaitClaim(ctx, cfgPath, ClaimConfig{Listen: addr, Token: token}, slog.New(slog.DiscardHandler))
		done <- claimed{c, err}
	}()
	return addr, done
}

// A standby init answers only a claim with its token, then loads the
// config the claimer left, and stops listening.
func TestAwaitClaim(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "services.json")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"services":[],"standby":true,"claim":{"listen":"127.0.0.1:1","token":"t0k"},"statusFile":"` + dir + `/status.json"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, done := standby(t, ctx, cfgPath, "t0k")
	if err := Claim(ctx, addr, ClaimRequest{Token: "wrong"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("claim with a wrong token: %v, want invalid argument", err)
	}
	write(`{"services":[{"name":"a","command":["true"]}],"env":{"K":"v"}}`)
	if err := Claim(ctx, addr, ClaimRequest{Token: "t0k"}); err != nil {
		t.Fatalf("claim: %v", err)
	}
	o := <-done
	if o.err != nil || o.cfg == nil || len(o.cfg.Services) != 1 || o.cfg.Env["K"] != "v" {
		t.Fatalf("after the claim: %+v, %v", o.cfg, o.err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if err := Claim(short, addr, ClaimRequest{Token: "t0k"}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("a second claim after the first: %v, want unavailable (nobody listening)", err)
	}
}

func TestAwaitClaimStillStandby(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "services.json")
	if err := os.WriteFile(cfgPath, []byte(`{"services":[],"standby":true,"claim":{"listen":"127.0.0.1:1","token":"x"},"statusFile":"`+dir+`/status.json"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, done := standby(t, ctx, cfgPath, "x")
	if err := Claim(ctx, addr, ClaimRequest{Token: "x"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("claim of a config still on standby: %v", err)
	}
	if o := <-done; !errors.Is(o.err, errdefs.ErrInvalidArgument) {
		t.Fatalf("init: %v", o.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "status.json")); err != nil {
		t.Fatalf("the reason is not in the status file: %v", err)
	}
}

func TestStandbyNeedsClaim(t *testing.T) {
	if _, err := ParseConfig([]byte(`{"services":[],"standby":true}`)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("standby without a claim channel: %v", err)
	}
	if _, err := ParseConfig([]byte(`{"services":[],"dropCapabilities":["CAP_NOPE"]}`)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("an unknown capability: %v", err)
	}
}
