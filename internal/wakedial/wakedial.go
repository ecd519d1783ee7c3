// Package wakedial dials a pod that has just been woken, which may refuse
// for a moment after its restore.
package wakedial

import (
	"context"
	"net"
	"time"
)

// Window bounds how long a connection that waited for a wake keeps
// dialling the restored pod: closing the client instead (with its request
// unread) would reset it, which a woken pod must never do.
const Window = 10 * time.Second

// Retry returns dial's connection, dialling again with backoff within
// Window while retry says its error is passing (a refusal right after
// the restore), until ctx ends.
func Retry(ctx context.Context, dial func(context.Context) (net.Conn, error), retry func(error) bool) (net.Conn, error) {
	c, err := dial(ctx)
	if err == nil || !retry(err) {
		return c, err
	}
	deadline := time.Now().Add(Window)
	for delay := 20 * time.Millisecond; time.Now().Before(deadline); delay = min(2*delay, 500*time.Millisecond) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		if c, err = dial(ctx); err == nil || !retry(err) {
			return c, err
		}
	}
	return nil, err
}
