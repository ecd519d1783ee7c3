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

// Attempt bounds one dial within Retry. A dial the woken pod does not
// answer is not left to retransmit its SYN on the same address and port
// pair (which the pod may still hold from before its sleep, in
// TIME_WAIT: then it drops a SYN whose sequence number is below the old
// flow's) but dialled afresh, from another port.
const Attempt = time.Second

// Retry returns dial's connection, dialling again with backoff within
// Window while retry says its error is passing (a refusal right after
// the restore) or the dial timed out (Attempt), until ctx ends.
func Retry(ctx context.Context, dial func(context.Context) (net.Conn, error), retry func(error) bool) (net.Conn, error) {
	deadline := time.Now().Add(Window)
	once := func() (net.Conn, error, bool) {
		actx, cancel := context.WithTimeout(ctx, Attempt)
		defer cancel() // a connection made outlives its dial's context
		c, err := dial(actx)
		timedOut := err != nil && ctx.Err() == nil && actx.Err() != nil
		return c, err, err == nil || (!timedOut && !retry(err))
	}
	c, err, final := once()
	for delay := 20 * time.Millisecond; !final && time.Now().Before(deadline); delay = min(2*delay, 500*time.Millisecond) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		c, err, final = once()
	}
	return c, err
}
