package apiserver

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/pinacle/pinacle-node/internal/api"
)

// The API's own overhead over a unix socket, against the in-memory test
// service: what a CLI call or a Kubernetes provider call adds to the
// pod manager's work. Run: go test -run '^$' -bench . ./internal/api/

func BenchmarkGet(b *testing.B) {
	ts := startServerB(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := ts.client.Get(ctx, "web"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecTrue is a whole exec session of /bin/true: request,
// protocol switch, pipes, fork+exec on the host, exit frame.
func BenchmarkExecTrue(b *testing.B) {
	ts := startServerB(b)
	ctx := context.Background()
	for b.Loop() {
		if code, err := ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"/bin/true"}}, nil, nil, nil, nil); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkExecNoop is an exec session whose process costs nothing: the
// protocol's overhead alone (dial, request, switch, pipes, exit frame).
func BenchmarkExecNoop(b *testing.B) {
	ts := startServerB(b)
	ctx := context.Background()
	for b.Loop() {
		if code, err := ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"noop"}}, nil, nil, nil, nil); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

// BenchmarkExecStdout streams 64 MiB of process output through the frames.
func BenchmarkExecStdout(b *testing.B) {
	ts := startServerB(b)
	ctx := context.Background()
	const n = 64 << 20
	b.SetBytes(n)
	for b.Loop() {
		if code, err := ts.client.ExecStream(ctx, "web", api.ExecOptions{Args: []string{"/bin/sh", "-c", "head -c 67108864 /dev/zero"}}, nil, io.Discard, nil, nil); err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
}

func startServerB(b *testing.B) *testServer {
	b.Helper()
	// Request logs would measure testing.B's log buffer.
	ts := startServer(b, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	mustCreate(b, ts.client, "web")
	return ts
}
