package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"fmt"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

func (c *Client) Fork(ctx context.Context, idOrName string, req ForkRequest) (*Pod, error) {
	if err := validate(idOrName); err != nil {
		return nil, err
	}
	var p Pod
	if err := c.call(ctx, http.MethodPost, podPath(idOrName, "fork"), nil, req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (c *Client) SnapshotTemplate(ctx context.Context, req SnapshotRequest) (*Snapshot, error) {
	var s Snapshot
	if err := c.call(ctx, http.MethodPost, "/v1/snapshots", nil, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (c *Client) ListSnapshots(ctx context.Context) ([]Snapshot, error) {
	var out []Snapshot
	if err := c.call(ctx, http.MethodGet, "/v1/snapshots", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) RemoveSnapshot(ctx context.Context, key string) error {
	if key == "" || strings.Trim(key, "0123456789abcdef") != "" {
		return fmt.Errorf("snapshot key %q: must be lower-case hex: %w", key, errdefs.ErrInvalidArgument)
	}
	return c.call(ctx, http.MethodDelete, "/v1/snapshots/"+url.PathEscape(key), nil, nil, nil)
}
