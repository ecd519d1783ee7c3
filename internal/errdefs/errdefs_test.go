package errdefs

import (
	"context"
	"fmt"
	"net/http"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
		exit int
	}{
		{fmt.Errorf("pod x: %w", ErrNotFound), "not_found", ExitNotFound},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", ErrConflict)), "conflict", ExitConflict},
		{context.DeadlineExceeded, "timeout", ExitTimeout},
		{fmt.Errorf("unknown command: %w", ErrUsage), "usage", ExitUsage},
		{fmt.Errorf("boom"), "internal", ExitInternal},
	} {
		c := Classify(tc.err)
		if c.Code != tc.code || c.ExitCode != tc.exit {
			t.Errorf("Classify(%v) = %+v, want %s/%d", tc.err, c, tc.code, tc.exit)
		}
		if tc.code != "internal" && FromCode(tc.code) == nil {
			t.Errorf("FromCode(%s) = nil", tc.code)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"a", "pod-1", "x.y_z"} {
		if err := ValidateID("pod", ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "-a", "A", "x y", string(make([]byte, 70))} {
		if err := ValidateID("pod", bad); !IsInvalidArgument(err) {
			t.Errorf("ValidateID(%q) = %v, want invalid argument", bad, err)
		}
	}
}

// The statuses spelled in errdefs.go are net/http's.
func TestStatusesAreNetHTTPs(t *testing.T) {
	for got, want := range map[int]int{
		statusBadRequest: http.StatusBadRequest, statusNotFound: http.StatusNotFound,
		statusConflict: http.StatusConflict, statusInternalServerError: http.StatusInternalServerError,
		statusServiceUnavailable: http.StatusServiceUnavailable, statusGatewayTimeout: http.StatusGatewayTimeout,
		statusInsufficientStorage: http.StatusInsufficientStorage,
	} {
		if got != want {
			t.Errorf("status %d, net/http says %d", got, want)
		}
	}
}
