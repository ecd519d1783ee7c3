package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/webterm"
)

// newWebtermCmd is the pod's web terminal, run inside the sandbox by the
// supervisor as the web-terminal service.
func newWebtermCmd() *cobra.Command {
	var (
		port      int
		addr      string
		shell     string
		cwd       string
		tokenFile string
		origins   []string
		login     bool
		maxSess   int
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "webterm",
		Short: "Serve a shell in the browser (xterm.js over a websocket; runs inside the pod)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error: %w", logLevel, errdefs.ErrInvalidArgument)
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port %d: want 0-65535: %w", port, errdefs.ErrInvalidArgument)
			}
			opts := []webterm.Option{webterm.WithLogger(log), webterm.WithLogin(login), webterm.WithMaxSessions(maxSess)}
			if shell != "" {
				opts = append(opts, webterm.WithShell(shell))
			}
			if cwd != "" {
				opts = append(opts, webterm.WithDir(cwd))
			}
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				opts = append(opts, webterm.WithToken(strings.TrimSpace(string(b))))
			}
			if len(origins) > 0 {
				opts = append(opts, webterm.WithAllowedOrigins(origins...))
			}
			h, err := webterm.New(opts...)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listen: %w", err)
			}
			log.Info("webterm: listening", "addr", ln.Addr().String(), "shell", h.Shell(), "token", tokenFile != "")
			// The supervisor forwards SIGHUP to its services (a reload);
			// catching it keeps the sessions alive. Caught, not ignored:
			// an ignored signal would stay ignored in the shells.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					log.Info("webterm: SIGHUP ignored")
				}
			}()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return h.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.IntVar(&port, "port", webterm.DefaultPort, "TCP port")
	f.StringVar(&addr, "addr", "0.0.0.0", "address to listen on")
	f.StringVar(&shell, "shell", "", "shell to run (default /bin/bash, else /bin/sh)")
	f.StringVar(&cwd, "cwd", "", "the shell's working directory (default: this process's, the pod's working dir under the supervisor)")
	f.StringVar(&tokenFile, "token-file", "", "require the token in this file: the page as ?token=..., the websocket too")
	f.StringSliceVar(&origins, "allow-origin", nil, "also accept websockets from pages on these origin host patterns (path.Match, e.g. *.example.com)")
	f.BoolVar(&login, "login", false, "run the shell as a login shell (reads /etc/profile, which may reset the image's PATH)")
	f.IntVar(&maxSess, "max-sessions", webterm.DefaultMaxSessions, "concurrent sessions at most")
	f.StringVar(&logLevel, "log-level", "info", "log level (JSON on stderr)")
	return cmd
}
