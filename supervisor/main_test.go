package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// The test binary doubles as the init and as the `init svc` client when
// re-executed with SUPERVISOR_TEST_HELPER set, so the PID-1 and control
// tests run the real code in a real separate process.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISOR_TEST_HELPER") {
	case "":
		code := m.Run()
		if initBin != "" {
			os.RemoveAll(filepath.Dir(initBin))
		}
		os.Exit(code)
	case "init":
		log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if err := RunInit(context.Background(), os.Args[1], log); err != nil {
			fmt.Fprintln(os.Stderr, "init:", err)
			os.Exit(1)
		}
		os.Exit(0)
	case "svc":
		// argv: socket op [service]
		req := ControlRequest{Op: os.Args[2]}
		if len(os.Args) > 3 {
			req.Service = os.Args[3]
		}
		st, err := Control(context.Background(), os.Args[1], req)
		json.NewEncoder(os.Stdout).Encode(NewControlResponse(st, err))
		os.Exit(errdefs.Classify(err).ExitCode)
	}
	os.Exit(2)
}
