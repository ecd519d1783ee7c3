package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pinacle/pinacle-node/internal/errdefs"
)

// Client talks to a node's API over its unix socket. It implements
// Service, so code written against the interface runs in the daemon
// or against it alike. Errors keep the node's message and class:
// errors.Is(err, errdefs.ErrNotFound) works across the wire.
type Client struct {
	path string
	hc   *http.Client
}

var _ Service = (*Client)(nil)

// base is the URL host for requests; the socket path decides where they go.
const base = "http://pinacle-node"

// NewClient returns a client for the socket at path (DefaultSocketPath if empty).
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocketPath
	}
	c := &Client{path: path}
	tr := &http.Transport{
		DialContext:        c.dial,
		DisableCompression: true,
		MaxIdleConns:       4,
	}
	// No overall timeout: creates with wait and followed streams take as
	// long as they take; callers bound them with ctx.
	c.hc = &http.Client{Transport: tr}
	return c
}

// SocketPath is the socket the client dials.
func (c *Client) SocketPath() string { return c.path }

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &unreachableError{path: c.path, cause: err}
	}
	return conn, nil
}

// do sends a request and returns the response when its status is 2xx;
// otherwise the node's error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, errorFromBody(resp.StatusCode, raw)
	}
	return resp, nil
}

// transportError keeps the unreachable error and ctx errors findable.
func (c *Client) transportError(ctx context.Context, err error) error {
	var ue *unreachableError
	if errors.As(err, &ue) {
		return ue
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("pinacle-node at %s: %w (%w)", c.path, errdefs.ErrUnavailable, err)
}

// call does a request and decodes a JSON reply into out (nil: discard).
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	resp, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
	}
	return nil
}

func podPath(id string, rest ...string) string {
	p := "/v1/pods/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// validate catches a bad ID locally with the same message the node gives.
func validate(id string) error { return errdefs.ValidateID("pod", id) }

// Version asks the node for its version.
func (c *Client) Version(ctx context.Context) (*VersionInfo, error) {
	var v VersionInfo
	if err := c.call(ctx, http.MethodGet, "/v1/version", nil, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Ping checks the node answers /healthz.
func (c *Client) Ping(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

func (c *Client) Create(ctx context.Context, req CreateRequest) (*Pod, error) {
	var q url.Values
	if req.Wait {
		q = url.Values{"wait": {"true"}}
	}
	var p Pod
	if err := c.call(ctx, http.MethodPost, "/v1/pods", q, req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (c *Client) Get(ctx context.Context, idOrName string) (*Pod, error) {
	return c.podCall(ctx, http.MethodGet, idOrName, "")
}

func (c *Client) List(ctx context.Context) ([]*Pod, error) {
	var ps []*Pod
	if err := c.call(ctx, http.MethodGet, "/v1/pods", nil, nil, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}

func (c *Client) Start(ctx context.Context, idOrName string) (*Pod, error) {
	return c.podCall(ctx, http.MethodPost, idOrName, "start")
}

func (c *Client) Stop(ctx context.Context, idOrName string) (*Pod, error) {
	return c.podCall(ctx, http.MethodPost, idOrName, "stop")
}

func (c *Client) Hibernate(ctx context.Context, idOrName string) (*Pod, error) {
	return c.podCall(ctx, http.MethodPost, idOrName, "hibernate")
}

func (c *Client) Wake(ctx context.Context, idOrName string) (*Pod, error) {
	return c.podCall(ctx, http.MethodPost, idOrName, "wake")
}

func (c *Client) podCall(ctx context.Context, method, id, op string) (*Pod, error) {
	if err := validate(id); err != nil {
		return nil, err
	}
	path := podPath(id)
	if op != "" {
		path = podPath(id, op)
	}
	var p Pod
	if err := c.call(ctx, method, path, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (c *Client) Delete(ctx context.Context, idOrName string) error {
	if err := validate(idOrName); err != nil {
		return err
	}
	return c.call(ctx, http.MethodDelete, podPath(idOrName), nil, nil, nil)
}

// Events calls fn for each event the node streams. With follow it
// returns when ctx ends (with ctx's error) or fn fails (with fn's error).
func (c *Client) Events(ctx context.Context, idOrName string, since uint64, follow bool, fn func(Event) error) error {
	path := "/v1/events"
	if idOrName != "" {
		if err := validate(idOrName); err != nil {
			return err
		}
		path = podPath(idOrName, "events")
	}
	q := url.Values{}
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.do(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var line EventLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("events: decode %q: %w", truncate(sc.Bytes(), 100), err)
		}
		if line.Error != nil {
			return &Error{Status: http.StatusOK, Body: *line.Error}
		}
		if err := fn(line.Event); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("events: %w", c.transportError(ctx, err))
	}
	return nil
}

// Logs copies a service's log to w; with follow until ctx ends.
func (c *Client) Logs(ctx context.Context, idOrName, service string, tail int, follow bool, w io.Writer) error {
	if err := validate(idOrName); err != nil {
		return err
	}
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	if follow {
		q.Set("follow", "true")
	}
	resp, err := c.do(ctx, http.MethodGet, podPath(idOrName, "logs"), q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("logs: %w", err)
	}
	// Trailers are known only after the body is read to EOF.
	if t := resp.Trailer.Get(ErrorTrailer); t != "" {
		return errorFromBody(http.StatusOK, []byte(t))
	}
	return nil
}

func (c *Client) Metrics(ctx context.Context, idOrName string) (*Metrics, error) {
	if err := validate(idOrName); err != nil {
		return nil, err
	}
	var m Metrics
	if err := c.call(ctx, http.MethodGet, podPath(idOrName, "metrics"), nil, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (c *Client) Health(ctx context.Context, idOrName string) (*Health, error) {
	if err := validate(idOrName); err != nil {
		return nil, err
	}
	var h Health
	if err := c.call(ctx, http.MethodGet, podPath(idOrName, "health"), nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// ServiceControl lists services (op "ls") or starts, stops or restarts one.
func (c *Client) ServiceControl(ctx context.Context, idOrName, op, service string) (*ServiceStatus, error) {
	if err := validate(idOrName); err != nil {
		return nil, err
	}
	var st ServiceStatus
	var err error
	switch op {
	case "ls", "list":
		err = c.call(ctx, http.MethodGet, podPath(idOrName, "services"), nil, nil, &st)
	case "start", "stop", "restart":
		if verr := errdefs.ValidateID("service", service); verr != nil {
			return nil, verr
		}
		err = c.call(ctx, http.MethodPost, podPath(idOrName, "services", service, op), nil, nil, &st)
	default:
		return nil, fmt.Errorf("service op %q: want ls, start, stop or restart: %w", op, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}
