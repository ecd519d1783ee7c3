package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// URL asks the node for a signed gateway link (POST /v1/pods/{id}/url).
func (c *Client) URL(ctx context.Context, idOrName string, req URLRequest) (*PodURL, error) {
	if err := validate(idOrName); err != nil {
		return nil, err
	}
	if req.TTL < 0 {
		return nil, fmt.Errorf("ttl %s: must not be negative: %w", req.TTL, errdefs.ErrInvalidArgument)
	}
	var u PodURL
	if err := c.call(ctx, http.MethodPost, podPath(idOrName, "url"), nil, req, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// RevokeURLs revokes the pod's gateway links (POST /v1/pods/{id}/url/revoke).
func (c *Client) RevokeURLs(ctx context.Context, idOrName string) error {
	if err := validate(idOrName); err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, podPath(idOrName, "url", "revoke"), nil, nil, nil)
}
