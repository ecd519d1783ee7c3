package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/internal/testenv"
)

// A standby init answers only a claim, then loads the config the claimer
// left; one that still says standby is the claim's error.
func TestAwaitClaim(t *testing.T) {
	testenv.RequireRoot(t) // the control socket serves root peers only
	dir := t.TempDir()
	cfgPath, sock := filepath.Join(dir, "services.json"), filepath.Join(dir, "init.sock")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"services":[],"standby":true,"statusFile":"` + dir + `/status.json"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type out struct {
		cfg *Config
		err error
	}
	done := make(chan out, 1)
	go func() { c, err := awaitClaim(ctx, cfgPath, sock, slog.New(slog.DiscardHandler)); done <- out{c, err} }()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Control(ctx, sock, ControlRequest{Op: OpList}); !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("ls on standby: %v, want a conflict", err)
	}
	write(`{"services":[{"name":"a","command":["true"]}],"env":{"K":"v"}}`)
	if err := Claim(ctx, sock, ""); err != nil {
		t.Fatalf("claim: %v", err)
	}
	o := <-done
	if o.err != nil || o.cfg == nil || len(o.cfg.Services) != 1 || o.cfg.Env["K"] != "v" {
		t.Fatalf("after the claim: %+v, %v", o.cfg, o.err)
	}
}

func TestAwaitClaimStillStandby(t *testing.T) {
	testenv.RequireRoot(t) // the control socket serves root peers only
	dir := t.TempDir()
	cfgPath, sock := filepath.Join(dir, "services.json"), filepath.Join(dir, "init.sock")
	if err := os.WriteFile(cfgPath, []byte(`{"services":[],"standby":true,"statusFile":"`+dir+`/status.json"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := awaitClaim(ctx, cfgPath, sock, slog.New(slog.DiscardHandler)); done <- err }()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := Claim(ctx, sock, ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("claim of a config still on standby: %v", err)
	}
	if err := <-done; !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("init: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "status.json")); err != nil {
		t.Fatalf("the reason is not in the status file: %v", err)
	}
}
