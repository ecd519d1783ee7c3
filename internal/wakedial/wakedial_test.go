package wakedial

import (
	"context"
	"errors"
	"net"
	"testing"
)

var errRefused = errors.New("refused")

func TestRetryUntilListening(t *testing.T) {
	calls := 0
	c, err := Retry(context.Background(), func(context.Context) (net.Conn, error) {
		calls++
		if calls < 3 {
			return nil, errRefused
		}
		a, b := net.Pipe()
		b.Close()
		return a, nil
	}, func(err error) bool { return errors.Is(err, errRefused) })
	if err != nil || c == nil || calls != 3 {
		t.Fatalf("Retry = %v, %v after %d dials; want a connection on the third", c, err, calls)
	}
	c.Close()
}

func TestRetryStopsOnOtherErrors(t *testing.T) {
	other := errors.New("no route")
	calls := 0
	_, err := Retry(context.Background(), func(context.Context) (net.Conn, error) {
		calls++
		return nil, other
	}, func(err error) bool { return errors.Is(err, errRefused) })
	if !errors.Is(err, other) || calls != 1 {
		t.Fatalf("Retry = %v after %d dials; want the first error at once", err, calls)
	}
}

func TestRetryEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := Retry(ctx, func(context.Context) (net.Conn, error) {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil, errRefused
	}, func(error) bool { return true })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Retry = %v; want the context's end", err)
	}
}
